"""What publishers send: each kind's topic, contract, Kafka key and event id, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.contracts.alerts import DepartmentAlert
from schemas.contracts.broadcasts import BroadcastReceipt, EmergencyBroadcast
from schemas.contracts.cap import CapError, looks_like_xml, parse_cap
from schemas.contracts.events import GridReport
from streams import topics
from streams.intake.validation import message_of, reason_of


@dataclass(frozen=True)
class Kind:
    """One publishable kind: its topic, its contract, its Kafka key and its id."""

    topic: topics.TopicSpec
    model: type[BaseModel]
    key: Callable[[Any], str]
    event_id: Callable[[Any], str]
    summary: str


KINDS = {
    "grid-reports": Kind(topics.GRID_REPORTS, GridReport, lambda m: m.grid_code, lambda m: m.event_id,
                         "网格员上报 a grid report (grid back-end)"),
    "dept-alerts": Kind(topics.DEPT_ALERTS, DepartmentAlert, lambda m: m.department.value, lambda m: m.event_id,
                        "部门预警 a department alert (a department's own only)"),
    "emergency-broadcasts": Kind(topics.EMERGENCY_BROADCASTS, EmergencyBroadcast, lambda m: m.sender,
                                 lambda m: m.identifier, "应急广播 a CAP 1.2 alert, XML or JSON"),
    "broadcast-receipts": Kind(topics.BROADCAST_RECEIPTS, BroadcastReceipt, lambda m: m.region_code,
                               lambda m: m.event_id, "播发回执 a terminal delivery receipt"),
}


def guess_kind(first: dict[str, Any]) -> str | None:
    """The kind of a JSON document from its fields, for files that do not say."""
    for name, fields in (("grid-reports", "grid_code"), ("dept-alerts", "department"),
                         ("broadcast-receipts", "broadcast_identifier"), ("emergency-broadcasts", "msgType")):
        if fields in first:
            return name
    return None


class Invalid(ValueError):
    """A document that does not meet its contract; ``errors`` name each field and message."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['field'] or '(document)'}: {e['message']}" for e in errors))
        self.errors = errors


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]), "message": message_of(e), "reason": reason_of(e)}
        for e in exc.errors(include_url=False)
    ]


def parse_document(kind: Kind, raw: bytes) -> Any:
    """One document of a kind (CAP XML for broadcasts, JSON otherwise), or ``Invalid``."""
    try:
        if kind.model is EmergencyBroadcast and looks_like_xml(raw):
            return EmergencyBroadcast.model_validate(parse_cap(raw))
        return kind.model.model_validate_json(raw)
    except CapError as exc:
        raise Invalid([{"field": "", "message": str(exc), "reason": exc.reason}]) from exc
    except ValidationError as exc:
        raise Invalid(field_errors(exc)) from exc
