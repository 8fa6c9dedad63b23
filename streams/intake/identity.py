"""Personal identifiers (个人信息): keyed pseudonyms and masking, before anything leaves validation.

One person gets one pseudonym across every source, so correlation still works: an 18-digit
resident ID number (checksum-validated) is the strongest identity, then a mobile number, then
a name within its community. Identifiers found in free text are replaced by their pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
import re

from schemas.contracts.events import Identity
from streams.intake.masking import Found, classify, find_identifiers, fold, replace

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# A name field in JSON text, even truncated or otherwise invalid: "name": "张伟".
NAME_FIELD = re.compile(r'"(?:name|姓名|full_name|contact_name)"\s*:\s*"([^"\\]{1,64})"')


_ID_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]")
_ASCII_ZERO_SUM = ord("0") * sum(_ID_WEIGHTS)  # the digits' codes are their values plus ord("0")


def check_digit(body: str) -> str:
    """The GB 11643 check digit for the first 17 digits of a resident ID number."""
    return _ID_CHECK[(sum(map(operator.mul, body.encode("ascii"), _ID_WEIGHTS)) - _ASCII_ZERO_SUM) % 11]


def valid_id_number(value: str) -> bool:
    """Whether an 18-digit resident ID number carries its right check digit."""
    return _ID_SHAPE.fullmatch(value) is not None and check_digit(value[:17]) == value[17].upper()


def _bare(value: str) -> str:
    """The digits of ``value``, full-width ones included."""
    return re.sub(r"\D", "", fold(value))


class Pseudonymiser:
    """HMAC-SHA256 pseudonyms under a configured key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()
        return f"p-{digest[:16]}"

    def id_number(self, value: str) -> str:
        return self._mac("id", value.upper())

    def phone(self, value: str) -> str:
        return self._mac("phone", _bare(value)[-11:])

    def name(self, value: str, scope: str) -> str:
        """A name alone is not unique: it is scoped to a community."""
        return self._mac("name", f"{scope}\x1f{value.strip()}")

    def identity(self, name: str, scope: str, id_number: str | None = None, phone: str | None = None) -> Identity:
        """Every identifier a person was named by, pseudonymised: an ID number only with its right
        check digit (a mistyped one would split one person in two), a phone only if a mobile (a
        landline is a household's), the name within ``scope``."""
        return Identity(
            id_number=self.id_number(id_number) if id_number and valid_id_number(id_number) else None,
            mobile=self.phone(phone) if phone and classify(_bare(phone)) == "mobile" else None,
            name=self.name(name, scope),
        )

    def person(self, name: str, scope: str, id_number: str | None = None, phone: str | None = None) -> str:
        """The pseudonym of a person by their strongest identifier: ID number, else mobile number,
        else scoped name (``streams.intake.linking`` joins the others to it)."""
        return self.identity(name, scope, id_number, phone).strongest

    def record(self, *parts: str) -> str:
        """A keyed digest of a record's parts: an id that says nothing of the identifiers in it."""
        return self._mac("record", "\x1f".join(parts))

    def landline(self, value: str) -> str:
        return self._mac("landline", value)

    def number(self, value: str) -> str:
        return self._mac("number", value)

    def mask_text(self, text: str, names: dict[str, str] | None = None, scope: str = "") -> str:
        """Replace the given names (name -> pseudonym), then every identifier ``masking`` finds:
        numbers however written, and names nobody declared (pseudonymised within ``scope``)."""
        if not text:
            return text
        for name in sorted(names or {}, key=len, reverse=True):
            if name:
                text = text.replace(name, f"[当事人 {names[name]}]")  # type: ignore[index]
        return replace(text, find_identifiers(text), lambda found: self._mask(found, scope))

    def _mask(self, found: Found, scope: str) -> str:
        label, pseudonym = {
            "id_number": ("身份证", self.id_number),
            "mobile": ("手机", self.phone),
            "landline": ("电话", self.landline),
            "number": ("号码", self.number),
        }.get(found.kind, ("姓名", lambda v: self.name(v, scope)))
        return f"[{label} {pseudonym(found.value)}]"

    def mask_raw(self, text: str) -> str:
        """Mask raw input of unknown shape (a dead letter): names are taken from its name fields."""
        names = {m[1]: self.name(m[1], "") for m in NAME_FIELD.finditer(text)}
        return self.mask_text(text, names)
