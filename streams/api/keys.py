"""API keys (接入密钥): for publishers (a department, the grid back-end, the broadcast system)
and for centres (``centre:<code>``), which act on signals in their jurisdiction and follow
their notices.

Keys are random 256-bit tokens shown once when created; only their SHA-256 is stored (a slow
password hash adds nothing for a token of that entropy), and they are compared in constant time.
A key says who publishes; what each publisher may publish is fixed here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from schemas.contracts.alerts import Department
from streams import topics
from streams.api.watched import WatchedFile
from streams.store.jurisdiction import check_centre

log = logging.getLogger(__name__)

GRID = "grid"  # 网格 back-end
BROADCAST = "broadcast"  # 广电: the emergency broadcast system and its terminals
PUBLISHERS = (GRID, BROADCAST, *(d.value for d in Department))
CENTRE = "centre:"  # a centre's key: centre:210202


def centre_of(publisher: str) -> str | None:
    """The centre code a key acts for, or None for a publisher's key."""
    return publisher.removeprefix(CENTRE) if publisher.startswith(CENTRE) else None


def known_holder(name: str) -> bool:
    """A publisher, or a centre that exists in the region registry."""
    if name in PUBLISHERS:
        return True
    code = centre_of(name)
    if code is None:
        return False
    try:
        check_centre(code)
    except (KeyError, ValueError):
        return False
    return True


def may_publish(publisher: str, topic: str) -> bool:
    """The grid back-end publishes grid reports, the broadcast system broadcasts and receipts,
    and each department its own alerts only (checked against the alert's department too)."""
    if publisher == GRID:
        return topic == topics.GRID_REPORTS.name
    if publisher == BROADCAST:
        return topic in (topics.EMERGENCY_BROADCASTS.name, topics.BROADCAST_RECEIPTS.name)
    return topic == topics.DEPT_ALERTS.name and publisher in {d.value for d in Department}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    publisher: str
    sha256: str


class KeyStore:
    """The keys file (JSON), created and revoked with ``fengqiao keys``. A running gateway reads
    it again whenever it changed on disk (looked at on every request: one ``stat``), so a key
    added or revoked takes effect at once, without a restart. A file that cannot be read
    authenticates no one until it is mended (fail closed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: list[ApiKey] = []
        self._file = WatchedFile(path)
        self.refresh()

    def refresh(self) -> None:
        """Read the file again if it is not the one read last (written since, replaced, removed)."""
        found = self._file.reread(lambda doc: [ApiKey(**k) for k in doc["keys"]], [], "no key is accepted")
        if found is not None:
            self.keys = found

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [asdict(k) for k in self.keys]}, indent=2), encoding="utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def add(self, publisher: str, key_id: str | None = None) -> tuple[ApiKey, str]:
        """A new key for ``publisher``: returns the record and the key itself, shown only now."""
        self.refresh()
        if not known_holder(publisher):
            raise ValueError(f"unknown publisher {publisher!r}; one of {', '.join(PUBLISHERS)}, "
                             "or centre:CODE for a centre (4, 6, 9 or 12 digits)")
        key_id = key_id or f"{publisher.replace(':', '-')}-{secrets.token_hex(3)}"
        if any(k.id == key_id for k in self.keys):
            raise ValueError(f"a key {key_id!r} exists already")
        token = f"fq_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, publisher, digest(token))
        self.keys.append(record)
        self.save()
        return record, token

    def revoke(self, key_id: str) -> bool:
        self.refresh()
        before = len(self.keys)
        self.keys = [k for k in self.keys if k.id != key_id]
        self.save()
        return len(self.keys) < before

    def authenticate(self, token: str | None) -> ApiKey | None:
        """The key a token belongs to, or None; every stored key is compared, in constant time."""
        if not token:
            return None
        self.refresh()
        presented = digest(token)
        found = None
        for key in self.keys:
            if hmac.compare_digest(presented, key.sha256):
                found = key
        return found
