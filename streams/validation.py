"""The validation step (校验): input bytes become a normalised, pseudonymised event or a dead letter.

Nothing is dropped: what fails keeps its original bytes, where it came from, the failing field
and a message, and goes to the dead-letters topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from schemas.events import GridReport, NormalisedEvent, Source
from streams.identity import Pseudonymiser

GRID_PUBLISHER = "grid"


@dataclass(frozen=True)
class DeadLetter:
    """Input that failed validation, kept whole with its reason."""

    raw: bytes
    source_topic: str
    partition: int
    offset: int
    reason: str  # invalid_encoding | invalid_json | not_in_catalogue | unknown_region | invalid_field
    field: str
    message: str

    @property
    def dlq_id(self) -> str:
        return f"{self.source_topic}/{self.partition}/{self.offset}"

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carried beside the original bytes on the dead-letters topic."""
        return [
            ("fq.source.topic", self.source_topic.encode()),
            ("fq.source.partition", str(self.partition).encode()),
            ("fq.source.offset", str(self.offset).encode()),
            ("fq.reason", self.reason.encode()),
            ("fq.field", self.field.encode()),
            ("fq.message", self.message.encode()),
        ]

    @classmethod
    def from_headers(cls, raw: bytes, headers: dict[str, bytes]) -> DeadLetter:
        def h(name: str) -> str:
            return headers.get(name, b"").decode("utf-8", "replace")

        return cls(raw, h("fq.source.topic"), int(h("fq.source.partition") or -1),
                   int(h("fq.source.offset") or -1), h("fq.reason"), h("fq.field"), h("fq.message"))

    def row(self, pseudonymiser: Pseudonymiser, received_at: datetime) -> dict[str, object]:
        """The ClickHouse row: a hash and a masked preview, never identifiers in clear."""
        preview = self.raw[:512].decode("utf-8", "replace")
        return {
            "dlq_id": self.dlq_id,
            "source_topic": self.source_topic,
            "partition": self.partition,
            "offset": self.offset,
            "reason": self.reason,
            "field": self.field,
            "message": pseudonymiser.mask_raw(self.message),
            "raw_sha256": hashlib.sha256(self.raw).hexdigest(),
            "raw_preview": pseudonymiser.mask_raw(preview),
            "received_at": received_at,
        }


def _reason(error: dict) -> str:
    message = str(error.get("msg", ""))
    if "not_in_catalogue" in message:
        return "not_in_catalogue"
    if "region code" in message:
        return "unknown_region"
    if error.get("type") in ("json_invalid", "json_type"):
        return "invalid_json"
    return "invalid_field"


def dead_letter_from(exc: ValidationError, raw: bytes, topic: str, partition: int, offset: int) -> DeadLetter:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return DeadLetter(raw, topic, partition, offset, _reason(first), field, message)


class Validator:
    """Turns raw input into normalised events under one pseudonymisation key."""

    def __init__(self, pseudonymiser: Pseudonymiser) -> None:
        self.pseudonymiser = pseudonymiser

    def grid_report(self, raw: bytes, topic: str, partition: int, offset: int,
                    now: datetime) -> NormalisedEvent | DeadLetter:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return DeadLetter(raw, topic, partition, offset, "invalid_encoding", "",
                              f"not UTF-8 at byte {exc.start}")
        try:
            report = GridReport.model_validate_json(raw)
        except ValidationError as exc:
            return dead_letter_from(exc, raw, topic, partition, offset)
        return self.normalise_grid_report(report, now)

    def normalise_grid_report(self, report: GridReport, now: datetime) -> NormalisedEvent:
        p = self.pseudonymiser
        community = report.location.region_code
        subjects = {party.name: p.person(party.name, community, party.id_number, party.phone)
                    for party in report.parties}
        attributes = {"reporter": report.reporter}
        if report.location.address:
            attributes["address"] = p.mask_text(report.location.address, subjects)
        if report.location.lat is not None and report.location.lon is not None:
            attributes["lat"], attributes["lon"] = str(report.location.lat), str(report.location.lon)
        if report.attachments:
            attributes["attachments"] = str(len(report.attachments))
        roles = [party.role for party in report.parties if party.role]
        if roles:
            attributes["party_roles"] = ",".join(roles)
        return NormalisedEvent(
            event_id=report.event_id,
            publisher=GRID_PUBLISHER,
            source=Source.grid_report,
            category=report.category,
            region_code=community,
            grid_code=report.grid_code,
            occurred_at=report.occurred_at,
            ingested_at=now,
            level=report.severity_hint,
            subjects=sorted(set(subjects.values())),
            text=p.mask_text(report.text, subjects),
            attributes=attributes,
        )
