"""A small, hand-countable week in two districts of 大连, stored through the sinks' own row shapes.

The analysts' cookbook and the jurisdiction tests run against it; every expected figure in
them can be counted from this file. "Now" is ``NOW``: Friday 2026-11-20 15:00, Beijing.

- 中山区 (210202): community A1 has five neighbour disputes on Thursday between the same two
  people (X in all five, Y in three), a 110 call, and an older family dispute last month whose
  report synced after Thursday's, too late for A1's cluster;
  community A2 has a fire hazard reported twice at the same address on Wednesday.
- 西岗区 (210203): community B1 has three disputes on Tuesday (Z in two), an uncovered broadcast,
  and a neighbour dispute of last month whose report synced after Tuesday's, too late for B1's
  cluster. Both late reports are stored as events and noted once each in late_events.
- People: X is named by ID number in three of A1's disputes and last month's, by mobile alone (as
  张伟) in the other two, and by ID number and mobile in the 110 call, which links the two: one
  person, under the pseudonym of the ID number (met first). Y and Z by ID number alone.
- Signals: A1's dispute cluster (yellow, upgraded to orange), A2's fire hazard (orange), B1's
  dispute cluster (yellow), B1's broadcast coverage gap (orange), and a drill in A1.
- Handling: A1 acknowledged in 10 min, assigned to police and civil affairs, never closed;
  A2 acknowledged in 40 min, closed in 20 h, reopened and closed again; B1 acknowledged in 60
  min and closed after 75 h (late); the gap never acknowledged; 西岗区 tried to close A1's
  signal and was refused.
- Silences: A2's community centre silenced the fire hazard rule there for a repair on Thursday;
  西岗区 silenced B1's broadcasts by their publisher for a terminal upgrade, and expired it early.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.contracts.events import BEIJING, GridReport
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import Evidence, LateEvent, PersonLink, RiskSignal
from schemas.contracts.silences import Silence, SilenceChange
from schemas.reference.regions import Level
from streams.detection.windows import to_ms
from streams.intake.identity import Pseudonymiser
from streams.intake.linking import DictLinks, resolve
from streams.intake.validation import Origin, Validator
from streams.notify.routing import route
from streams.store.clickhouse import EmbeddedStore, Store, load_regions, migrate
from streams.worker.sinks import dead_letter_row, event_rows, late_rows, notice_rows, person_link_rows, signal_rows
from tests.helpers import dept_alert, grid_report, id_number

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=BEIJING)
WEEK_START = datetime(2026, 11, 16, tzinfo=BEIJING)
A1, A2, B1 = "210202001004", "210202005001", "210203001001"
V = Validator(Pseudonymiser(b"seed-key"))
H = timedelta(hours=1)
M = timedelta(minutes=1)


def party(serial: int, county: str = "210202") -> dict[str, str]:
    return {"name": f"当事人{serial}", "id_number": id_number(serial, county)}


X, Y, Z = party(1), party(2), party(3, "210203")
X_BY_MOBILE = {"name": "张伟", "phone": "13812345678"}  # X as the grid worker knew him on Thursday


def person(p: dict[str, str], community: str) -> str:
    """The pseudonym the validator gives a party."""
    return V.pseudonymiser.person(p["name"], community, p["id_number"], None)


def _report(n: int, community: str, category: str, at: datetime, parties: list[dict], address: str) -> Any:
    raw = grid_report(n, community, category, at=at, parties=parties, text="纠纷", location={
        "region_code": community, "address": address})
    return V.normalise_grid_report(GridReport.model_validate(raw), at + 5 * M)


def events() -> dict[str, Any]:
    thursday, wednesday, tuesday = NOW - 30 * H, NOW - 54 * H, NOW - 78 * H
    out = {}
    for n in range(1, 6):
        parties = [X, Y] if n <= 3 else [X_BY_MOBILE]
        out[f"a1-{n}"] = _report(n, A1, "dispute.neighbour", thursday + n * H, parties, "5号楼")
    out["a1-old"] = _report(6, A1, "dispute.family", NOW - timedelta(days=31), [X], "5号楼")
    for n in (7, 8):
        out[f"a2-{n}"] = _report(n, A2, "hazard.fire", wednesday + (n - 7) * 6 * H, [], "8号楼楼道")
    for n in (9, 10, 11):
        out[f"b1-{n}"] = _report(n, B1, "dispute.neighbour", tuesday + (n - 9) * H, [Z] if n < 11 else [], "12号楼")
    out["b1-old"] = _report(12, B1, "dispute.neighbour", NOW - timedelta(days=33), [], "12号楼")
    alert = dept_alert(1, community=A1, occurred_at=(NOW - 2 * H).isoformat())
    accepted = V.dept_alert(json.dumps(alert, ensure_ascii=False).encode(), Origin("dept-alerts", 0, 0), NOW)
    out["police"] = accepted.events[0]
    return out


def signal(rule: str, level: RiskLevel, region: str, raised: datetime, evidence: list[Any], version: int = 1,
           updated: datetime | None = None, drill: bool = False) -> RiskSignal:
    return RiskSignal(
        signal_id=RiskSignal.make_id(rule, region, raised), version=version, rule_id=rule, rule_name=rule,
        level=level, entity_level=Level.community, entity=region, region_code=region,
        window_start=raised - 24 * H, window_end=raised, raised_at=raised, updated_at=updated or raised,
        evidence=[Evidence(uid=e.uid, source=e.source, category=e.category, occurred_at=e.occurred_at)
                  for e in evidence],
        summary=f"{rule} {region}", rule_chain=[rule], drill=drill)


def signals(ev: dict[str, Any]) -> dict[str, list[RiskSignal]]:
    """Each signal's versions, first to last."""
    a1_raised = NOW - 27 * H  # after A1's third dispute
    a1 = [signal("dispute_cluster", RiskLevel.yellow, A1, a1_raised, [ev["a1-1"], ev["a1-2"], ev["a1-3"]]),
          signal("dispute_cluster", RiskLevel.orange, A1, a1_raised,
                 [ev[f"a1-{n}"] for n in range(1, 6)], version=2, updated=NOW - 25 * H)]
    return {
        "a1": a1,
        "a2": [signal("fire_gas_hazard", RiskLevel.orange, A2, NOW - 48 * H, [ev["a2-7"], ev["a2-8"]])],
        "b1": [signal("dispute_cluster", RiskLevel.yellow, B1, NOW - 76 * H, [ev[f"b1-{n}"] for n in (9, 10, 11)])],
        "gap": [signal("broadcast_coverage_gap", RiskLevel.orange, B1, NOW - 26 * H, [])],
        "drill": [signal("dispute_cluster", RiskLevel.blue, A1, NOW - 1 * H, [ev["a1-5"]], drill=True)],
    }


def action(n: int, sig: RiskSignal, centre: str, kind: str, at: datetime, departments: tuple[str, ...] = (),
           outcome: str = "accepted", reason: str = "") -> dict[str, Any]:
    level = {4: "city", 6: "county", 9: "township", 12: "community"}[len(centre)]
    return {"action_id": f"act-{n:03d}", "signal_id": sig.signal_id, "region_code": sig.region_code,
            "centre_code": centre, "centre_level": level, "kind": kind, "departments": list(departments),
            "note": "", "actor": f"op-{centre}", "occurred_at": at.isoformat(), "recorded_at": at.isoformat(),
            "outcome": outcome, "reason": reason}


def actions(s: dict[str, list[RiskSignal]]) -> list[dict[str, Any]]:
    a1, a2, b1 = s["a1"][0], s["a2"][0], s["b1"][0]
    return [
        action(1, a1, A1, "acknowledge", a1.raised_at + 10 * M),
        action(2, a1, A1, "assign", a1.raised_at + 20 * M, ("police", "civil_affairs")),
        action(3, a1, A1, "feedback", a1.raised_at + 2 * H),
        action(4, a1, "210203", "close", a1.raised_at + 3 * H, outcome="refused",
               reason="210202001004 is outside the jurisdiction of 210203"),
        action(5, a2, A2, "acknowledge", a2.raised_at + 40 * M),
        action(6, a2, A2, "assign", a2.raised_at + 50 * M, ("fire",)),
        action(7, a2, A2, "close", a2.raised_at + 20 * H),
        action(8, a2, "210202005", "reopen", a2.raised_at + 22 * H),
        action(9, a2, A2, "close", a2.raised_at + 23 * H),
        action(10, b1, B1, "acknowledge", b1.raised_at + 60 * M),
        action(11, b1, B1, "close", b1.raised_at + 75 * H),
    ]


def late(ev: dict[str, Any], sigs: dict[str, list[RiskSignal]]) -> list[LateEvent]:
    """The reports of last month read after each community's disputes, too late for their cluster."""
    def note(old: Any, latest: Any, sig: RiskSignal) -> LateEvent:
        behind = (latest.occurred_at - old.occurred_at).total_seconds()
        return LateEvent(uid=old.uid, rule_id="dispute_cluster", entity=sig.region_code, region_code=sig.region_code,
                         occurred_at=old.occurred_at, late_by_s=behind - 25 * 3600, signal_id=sig.signal_id,
                         noted_at=sig.updated_at)

    return [note(ev["a1-old"], ev["a1-5"], sigs["a1"][-1]), note(ev["b1-old"], ev["b1-11"], sigs["b1"][0])]


def person_links(ev: dict[str, Any]) -> list[PersonLink]:
    """The links the correlator makes of the week's events, read in event-time order."""
    links, out = DictLinks(), {}
    for e in sorted(ev.values(), key=lambda e: e.occurred_at):
        for link in resolve(links, e.region_code[:6], e.identities, to_ms(e.occurred_at)).records(e, NOW):
            out[(link.county, link.identifier)] = link
    return list(out.values())


def dead_letter() -> dict[str, Any]:
    letter = V.grid_report(b'{"event_id": "broken"', Origin("grid-reports", 0, 42), NOW)
    return dead_letter_row(letter, V.pseudonymiser, NOW - H)


def silences() -> list[bytes]:
    """Two silences, one made and one made then expired, as the silences topic carries them."""
    made = Silence(silence_id="sil-a2-repair", centre=A2, rule_id="fire_gas_hazard", region_code=A2,
                   starts_at=NOW - 30 * H, ends_at=NOW - 26 * H, reason="消防设施检修", created_by="zhao.lei",
                   created_at=NOW - 30 * H, changed_by="zhao.lei", changed_at=NOW - 30 * H)
    upgrade = Silence(silence_id="sil-b1-terminals", centre=B1[:6], publisher="dalian-ebs", region_code=B1,
                      starts_at=NOW - 80 * H, ends_at=NOW - 60 * H, reason="终端升级", created_by="key:k-210203",
                      created_at=NOW - 80 * H, changed_by="key:k-210203", changed_at=NOW - 80 * H)
    expired = upgrade.model_copy(update={"change": SilenceChange.expired, "changed_at": NOW - 70 * H})
    return [s.model_dump_json().encode() for s in (made, upgrade, expired)]


def seed(store: Store) -> dict[str, Any]:
    """Store the week; returns the events and signals by name."""
    ev = events()
    sigs = signals(ev)
    rows: dict[str, list[bytes]] = {}

    def add(pairs: list[tuple[str, bytes]]) -> None:
        for table, row in pairs:
            rows.setdefault(table, []).append(row)

    for e in ev.values():
        add(event_rows(e.model_dump_json().encode()))
    for versions in sigs.values():
        for sig in versions:
            add(signal_rows(sig.model_dump_json().encode()))
            for notice in route(sig, sig.updated_at):
                add(notice_rows(notice.model_dump_json().encode()))
    for note in late(ev, sigs):
        add(late_rows(note.model_dump_json().encode()))
    for link in person_links(ev):
        add(person_link_rows(link.model_dump_json().encode()))
    for table, batch in rows.items():
        store.insert(table, batch, dedup_token=f"seed:{table}")
    store.insert("dispatch_actions", actions(sigs), dedup_token="seed:dispatch_actions")
    store.insert("dead_letters", [dead_letter()], dedup_token="seed:dead_letters")
    store.insert("silences", silences(), dedup_token="seed:silences")
    return {"events": ev, "signals": sigs}


def seeded_store(path: Path) -> tuple[EmbeddedStore, dict[str, Any]]:
    """A chdb store at ``path`` with the schema, the region dimension and the seeded week."""
    store = EmbeddedStore(str(path))
    migrate(store)
    load_regions(store)
    return store, seed(store)


def seeded_data_dir(root: Path) -> Path:
    """A data directory (``FENGQIAO_DATA_DIR``) holding the seeded week, closed for a CLI to open."""
    store, _ = seeded_store(root / "data" / "clickhouse")
    store.close()
    return root
