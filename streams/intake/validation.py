"""The validation step (校验): input bytes become normalised, pseudonymised events, or a dead letter.

Nothing is dropped: what fails keeps its original bytes, where it came from, the failing field
and a message, and goes to the dead-letters topic. Each input kind has one method here; they
share the parsing, the reasons and the identity protection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.contracts.alerts import REGISTERED_AS, REGISTRATIONS, Department, DepartmentAlert, departments
from schemas.contracts.broadcasts import BroadcastReceipt, CapMsgType, EmergencyBroadcast
from schemas.contracts.cap import CapError, looks_like_xml, parse_cap
from schemas.contracts.events import GridReport, Identity, Location, NormalisedEvent, Party, Source
from streams.intake.addresses import building_key
from streams.intake.hazards import DEPARTMENT_HAZARDS, hazard_of
from streams.intake.identity import Pseudonymiser
from streams.intake.masking import warm_up
from streams.runtime.deadletter import DeadLetter, Origin

GRID_PUBLISHER = "grid"
M = TypeVar("M", bound=BaseModel)


def outside_registry(error: Mapping[str, Any]) -> bool:
    """A code of the right form for a region or grid, in a county the registry does not hold."""
    where, value = (error.get("loc") or ("",))[-1], error.get("input")
    return (error.get("type") == "string_pattern_mismatch" and where in ("region_code", "grid_code")
            and isinstance(value, str) and value.isdigit() and len(value) in (12, 15))


def message_of(error: Mapping[str, Any]) -> str:
    """What failed, in words: a code outside the registry is named, not its pattern recited."""
    if outside_registry(error):
        return f"unknown region code {error['input']}: not in a county of this deployment's registry"
    return str(error["msg"]).removeprefix("Value error, ")


def reason_of(error: Mapping[str, Any]) -> str:
    """The dead-letter reason for one pydantic error."""
    message = str(error.get("msg", ""))
    if "not_in_catalogue" in message:
        return "not_in_catalogue"
    if "unknown grid" in message:
        return "unknown_grid"
    if "region code" in message or "geocode" in message or outside_registry(error):
        return "unknown_region"
    if error.get("type") in ("json_invalid", "json_type"):
        return "invalid_json"
    return "invalid_field"


def dead_letter_from(exc: ValidationError, raw: bytes, where: Origin) -> DeadLetter:
    first = exc.errors(include_url=False)[0]
    reason = reason_of(first)
    field = ".".join(str(p) for p in first["loc"]) or ("category" if reason == "not_in_catalogue" else "")
    return where.dead(raw, reason, field, message_of(first))


@dataclass(frozen=True)
class Accepted:
    """A valid input: the events it becomes, and its id for duplicate suppression."""

    uid: str
    events: list[NormalisedEvent]
    remember: tuple[str, dict[str, Any]] | None = None  # (key, value) for later references


Result = Accepted | DeadLetter
# Looks up an earlier broadcast by "sender,identifier": its regions, or None when unknown.
BroadcastLookup = Callable[[str], Mapping[str, Any] | None]


class Validator:
    """Turns raw input into normalised events under one pseudonymisation key."""

    def __init__(self, pseudonymiser: Pseudonymiser) -> None:
        self.pseudonymiser = pseudonymiser
        warm_up()

    # -- shared --------------------------------------------------------------------------
    def _parse(self, model: type[M], raw: bytes, where: Origin) -> M | DeadLetter:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return where.dead(raw, "invalid_encoding", "", f"not UTF-8 at byte {exc.start}")
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            return dead_letter_from(exc, raw, where)

    def _people(self, parties: list[Party], scope: str) -> tuple[dict[str, str], list[Identity]]:
        """Each party's name -> the pseudonym of their strongest identifier, and every identifier
        each was named by (pseudonyms), for linking one person across sources."""
        p = self.pseudonymiser
        identities = [p.identity(party.name, scope, party.id_number, party.phone) for party in parties]
        names = {party.name: found.strongest for party, found in zip(parties, identities)}
        return names, list(dict.fromkeys(identities))

    def _place(self, location: Location, people: dict[str, str]) -> dict[str, str]:
        """A location's address (masked, as written), its building key (楼栋: 7号楼, 7栋 and 七号楼
        are one building) and coordinates as attributes."""
        out = {}
        if location.address:
            out["address"] = self.pseudonymiser.mask_text(location.address, people, location.region_code)
            out["building"] = building_key(out["address"])
        if location.lat is not None and location.lon is not None:
            out["lat"], out["lon"] = str(location.lat), str(location.lon)
        return out

    # -- grid reports (网格员上报) ------------------------------------------------------------
    def grid_report(self, raw: bytes, where: Origin, now: datetime) -> Result:
        report = self._parse(GridReport, raw, where)
        if isinstance(report, DeadLetter):
            return report
        event = self.normalise_grid_report(report, now)
        return Accepted(event.uid, [event])

    def normalise_grid_report(self, report: GridReport, now: datetime) -> NormalisedEvent:
        p = self.pseudonymiser
        community = report.location.region_code
        people, identities = self._people(report.parties, community)
        # A grid worker's account is often their mobile number: masked like any text.
        attributes = {"reporter": p.mask_text(report.reporter), **self._place(report.location, people)}
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
            subjects=sorted(set(people.values())),
            identities=identities,
            text=p.mask_text(report.text, people, community),
            attributes=attributes,
            drill=report.drill,
        )

    # -- department alerts (部门预警) ----------------------------------------------------------
    def dept_alert(self, raw: bytes, where: Origin, now: datetime) -> Result:
        alert = self._parse(DepartmentAlert, raw, where)
        if isinstance(alert, DeadLetter):
            return alert
        p = self.pseudonymiser
        region = alert.location.region_code
        people, identities = self._people(alert.subjects, region)
        attributes = {k: p.mask_text(v, people, region) for k, v in alert.attributes.items()}
        attributes |= self._place(alert.location, people)
        attributes |= _register_and_hazard(alert)
        attributes["department_name"] = departments()[alert.department.value].name
        event = NormalisedEvent(
            event_id=alert.event_id,
            publisher=alert.department.value,
            source=Source.dept_alert,
            category=f"{alert.department.value}.{alert.category}",
            region_code=region,
            occurred_at=alert.occurred_at,
            ingested_at=now,
            level=alert.severity,
            subjects=sorted(set(people.values())),
            identities=identities,
            text=p.mask_text(alert.text, people, region),
            attributes=attributes,
            drill=alert.drill,
        )
        return Accepted(event.uid, [event])

    # -- emergency broadcasts (应急广播) -------------------------------------------------------
    def broadcast(self, raw: bytes, where: Origin, now: datetime, lookup: BroadcastLookup) -> Result:
        """A CAP alert (XML or JSON) becomes one event per area it covers (by division code)."""
        if looks_like_xml(raw):
            try:
                doc = parse_cap(raw)
            except CapError as exc:
                return where.dead(raw, exc.reason, "", str(exc))
            try:
                alert: EmergencyBroadcast | DeadLetter = EmergencyBroadcast.model_validate(doc)
            except ValidationError as exc:
                alert = dead_letter_from(exc, raw, where)
        else:
            alert = self._parse(EmergencyBroadcast, raw, where)
        if isinstance(alert, DeadLetter):
            return alert

        referenced = {key: lookup(key) for key in alert.referenced()}
        resolved = sorted(k for k, v in referenced.items() if v)
        regions = sorted({g.value for info in alert.info for area in info.area for g in area.geocode})
        if not regions:  # a Cancel without info takes the areas of what it cancels
            regions = sorted({r for v in referenced.values() if v for r in v["regions"]})
        if not regions:
            return where.dead(raw, "unresolved_reference", "references",
                              f"{alert.msg_type.value} without areas refers to no known alert")
        levels = [lv for info in alert.info if (lv := info.level) is not None]
        first = alert.info[0] if alert.info else None
        attributes = {
            "broadcast": alert.key,
            "identifier": alert.identifier,
            "status": alert.status.value,
            "msg_type": alert.msg_type.value,
            "references": ";".join(alert.references),
            "references_resolved": ";".join(resolved),
        }
        if first:
            hazard = hazard_of(first.event, first.headline or "") if alert.msg_type is not CapMsgType.cancel else ""
            attributes |= {"hazard": hazard} if hazard else {}
            attributes |= {"event": first.event, "cap_category": ",".join(first.category),
                           "severity": first.severity.value,
                           "area_desc": self.pseudonymiser.mask_text(";".join(a.area_desc for a in first.area)[:512])}
        text = (first.headline or first.description or "") if first else (alert.note or "")
        events = [
            NormalisedEvent(
                event_id=f"{alert.identifier}@{region}",
                publisher=alert.sender,
                source=Source.broadcast,
                category=f"broadcast.{alert.msg_type.value.lower()}",
                region_code=region,
                occurred_at=alert.sent,
                ingested_at=now,
                level=max(levels) if levels else None,
                text=self.pseudonymiser.mask_text(text),
                attributes=attributes,
                drill=alert.drill,
            )
            for region in regions
        ]
        remember = None
        if alert.msg_type is not CapMsgType.cancel:
            remember = (alert.key, {"regions": regions, "event": attributes.get("event", "")})
        return Accepted(f"{alert.sender}:{alert.identifier}", events, remember)

    # -- terminal receipts (播发回执) ----------------------------------------------------------
    def receipt(self, raw: bytes, where: Origin, now: datetime) -> Result:
        receipt = self._parse(BroadcastReceipt, raw, where)
        if isinstance(receipt, DeadLetter):
            return receipt
        event = NormalisedEvent(
            event_id=receipt.event_id,
            publisher=f"receipts:{receipt.broadcast_sender}",
            source=Source.broadcast_receipt,
            category="broadcast.receipt",
            region_code=receipt.region_code,
            occurred_at=receipt.occurred_at,
            ingested_at=now,
            attributes={
                "broadcast": f"{receipt.broadcast_sender},{receipt.broadcast_identifier}",
                "terminals_total": str(receipt.terminals_total),
                "terminals_played": str(receipt.terminals_played),
                "complete": "true" if receipt.terminals_played == receipt.terminals_total else "false",
            },
            drill=receipt.drill,
        )
        return Accepted(event.uid, [event])


def _register_and_hazard(alert: DepartmentAlert) -> dict[str, str]:
    """What rules read of a department alert beyond its category: a registration of a special
    population (``register``: registered or deregistered, ``population``: its kind), and a
    weather warning's ``hazard``."""
    department, category = alert.department, alert.category
    if department is Department.civil_affairs and category in REGISTRATIONS:
        return {"register": REGISTRATIONS[category], "population": alert.attributes["population"]}
    if department is Department.civil_affairs and category in REGISTERED_AS:
        return {"register": "registered", "population": REGISTERED_AS[category]}
    if department is Department.weather and category in DEPARTMENT_HAZARDS:
        return {"hazard": category}
    return {}
