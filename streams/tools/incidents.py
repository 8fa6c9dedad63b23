"""Injected incidents with ground truth (注入事件与真值), and detection quality against them.

The incidents are the rule pack's own test cases: each positive case is an incident its rule must
find, each near miss a decoy it must not fire on. A case is moved to a street of its own in the
simulated city (each community it names becomes a community of that street; street and
county-wide events such as a cold-wave warning are narrowed to the street, so no two cases can
meet; the background keeps off it what a rule watches, ``off_case_streets``), to a time of its own, and its people, ids and broadcasts are renamed; then every event is written
as the raw input its source publishes (a grid report, a department alert, a CAP alert in JSON,
a terminal receipt), so it goes through validation and pseudonymisation like any other.

A case whose outcome depends on its ``until`` (a near miss only because the window had not yet
closed) is not injectable into a stream that keeps going, and is left out with that reason.
Signals are attributed to a case by their evidence (every injected id carries the case's tag),
and chained signals through the signals they rest on.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.contracts.events import Source
from schemas.reference.regions import Level, registry
from streams import topics
from streams.detection.cases import run_case
from streams.detection.ruleset import CaseEvent, RuleCase, parse_duration
from streams.tools.simulator import synthetic_id_number

LONG_VIEW = "60d"  # how far past its last event a case is judged when the stream goes on
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨"
TAG = re.compile(r"(q\d{4,})-")  # every injected id starts with its case's tag
SIGNAL = re.compile(r"(sig-[0-9a-f]+)")  # a chained signal's evidence names the signal it rests on
MAX_CHAIN = 3
HAZARD_EVENTS = {"cold_wave": "寒潮", "blizzard": "暴雪", "heat_wave": "高温", "typhoon": "台风", "rainstorm": "暴雨",
                 "gale": "大风"}  # a case's hazard as the CAP event a weather bureau writes


@dataclass
class Incident:
    """One injected case: where, when, what should (or should not) fire."""

    tag: str
    rule_id: str
    case: str
    positive: bool  # an incident to find; False: a decoy that must not fire
    street: str
    start: datetime
    due: datetime  # by when its signal should be raised: its last event, plus an absence's wait
    inputs: list[tuple[datetime, str, bytes, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Skipped:
    rule_id: str
    case: str
    reason: str


def injectable(rules: list[Any]) -> tuple[list[tuple[Any, RuleCase]], list[Skipped]]:
    """The cases whose outcome holds when the stream goes on past their ``until``."""
    keep, skipped = [], []
    for rule in rules:
        for case in rule.tests:
            if any(e.source is Source.signal for e in case.events):
                skipped.append(Skipped(rule.id, case.name, "its events are signals, not inputs"))
                continue
            if any(e.source is Source.register for e in case.events):
                skipped.append(Skipped(rule.id, case.name, "a member of the grid register: reference data, not an input"))
                continue
            if any(later.at < earlier.at for earlier, later in zip(case.events, case.events[1:])):
                skipped.append(Skipped(rule.id, case.name, "an event arrives late: the week is published in time order"))
                continue
            short, _ = run_case(rules, rule, case)
            long, _ = run_case(rules, rule, case.model_copy(update={"until": parse_duration(LONG_VIEW)}))
            if bool(short.expected) != bool(long.got):
                skipped.append(Skipped(rule.id, case.name, "its outcome depends on the window not yet closing"))
                continue
            keep.append((rule, case))
    return keep, skipped


def off_case_streets(incidents: list[Incident], rules: list[Any]) -> Callable[[tuple[Any, ...]], bool]:
    """Whether a background input may stay: not one that a case's rule (or a rule it chains
    from) would take, in or covering the case's street, from a window before the case to a
    window after it. Otherwise the city itself would rewrite the ground truth: a grid worker's
    real visit answers a "no visit" case (the quality bench found one at 5% of the volume), a
    real third dispute completes a decoy. The rest of the background stays whole, there too,
    and what it raises is counted apart, as from background."""
    by_id = {r.id: r for r in rules}
    quiet = []
    for i in incidents:
        involved = _chained_from(by_id[i.rule_id], rules)
        span = max(r.window for r in involved)
        quiet.append((i.street[:9], involved, i.start - span, i.due + span))
    admitted: dict[tuple[str, Source, str], bool] = {}

    def keep(record: tuple[Any, ...]) -> bool:
        at, (source, category, regions) = record[0], _what(record[1], record[3])
        for street, involved, since, until in quiet:
            if since <= at <= until and any(_meets(r, street) for r in regions):
                key = (involved[0].id, source, category)
                if key not in admitted:
                    admitted[key] = any(rule.admits(source, category) for rule in involved)
                if admitted[key]:
                    return False
        return True

    return keep


def _chained_from(rule: Any, rules: list[Any]) -> list[Any]:
    """The rule and every rule whose signals it takes, directly or through others."""
    found = [rule]
    for r in found:
        found += [g for g in rules if g not in found and r.admits(Source.signal, f"signal.{g.id}")]
    return found


def _what(topic: str, value: dict[str, Any]) -> tuple[Source, str, list[str]]:
    """A raw input's source, category (as the normalised event will have it) and regions."""
    if topic == topics.GRID_REPORTS.name:
        return Source.grid_report, value["category"], [value["location"]["region_code"]]
    if topic == topics.DEPT_ALERTS.name:
        return Source.dept_alert, f"{value['department']}.{value['category']}", [value["location"]["region_code"]]
    if topic == topics.EMERGENCY_BROADCASTS.name:
        return Source.broadcast, f"broadcast.{value['msgType'].lower()}", [
            g["value"] for info in value.get("info", []) for a in info["area"] for g in a["geocode"]]
    return Source.broadcast_receipt, "broadcast.receipt", [value["region_code"]]


def _meets(region: str, street: str) -> bool:
    """Whether a 12-digit region lies in the 9-digit street, or covers it (a county, the street)."""
    prefix = region[:6] if region[6:] == "000000" else region[:9] if region[9:] == "000" else region
    return prefix.startswith(street) or street.startswith(prefix)


class Injector:
    """Turns rule test cases into raw inputs placed in the simulated city."""

    def __init__(self, city: str, seed: int) -> None:
        self.rng = random.Random(seed)
        reg = registry()
        self.streets = [s.code for s in reg.of_level(Level.township) if s.code.startswith(city)]
        self.communities = {s: [c.code for c in reg.children(s)] for s in self.streets}
        self.rng.shuffle(self.streets)
        self._n = 0

    def plan(self, cases: list[tuple[Any, RuleCase]], start: datetime, end: datetime,
             repeat: int = 1) -> tuple[list[Incident], list[Skipped]]:
        """Each case ``repeat`` times, each on a street of its own at a random time between
        ``start`` and ``end``, so that it is over (its signal due) before ``end``."""
        placed, skipped = [], []
        for n in range(repeat):
            for rule, case in cases:
                if len(placed) == len(self.streets):
                    skipped.append(Skipped(rule.id, case.name, f"repeat {n + 1}: no street left"))
                    continue
                length = max(e.at for e in case.events) + _due_after(rule, case)
                room = (end - start - length - timedelta(hours=2)).total_seconds()
                if room < 0:
                    skipped.append(Skipped(rule.id, case.name, "longer than the simulated period"))
                    continue
                at = start + timedelta(hours=1, seconds=self.rng.random() * room)
                placed.append(self.place(rule, case, at.replace(microsecond=0)))
        return placed, skipped

    def place(self, rule: Any, case: RuleCase, start: datetime) -> Incident:
        """The case as raw inputs on a street of its own, from ``start``."""
        self._n += 1
        tag = f"q{self._n:04d}"
        street = self.streets[(self._n - 1) % len(self.streets)]
        where: dict[str, str] = {}
        people: dict[str, dict[str, str]] = {}
        inputs, last = [], start
        for n, spec in enumerate(case.events):
            at = start + spec.at
            last = max(last, at)
            region = self._region(spec.region, street, where)
            subjects = [self._person(token, people) for token in spec.subjects]
            topic, key, value = self._raw(spec, f"{tag}-e{n}", tag, region, subjects, at)
            inputs.append((at, topic, key, value))
        positive = bool(case.expect)
        return Incident(tag, rule.id, case.name, positive, street, start, last + _due_after(rule, case), inputs)

    def _region(self, code: str, street: str, where: dict[str, str]) -> str:
        """Each community of the case becomes one of the street's; wider regions become the street."""
        if code[9:12] == "000":
            return street[:9] + "000"
        if code not in where:
            taken = set(where.values())
            free = [c for c in self.communities[street] if c not in taken]
            where[code] = free[0]
        return where[code]

    def _person(self, token: str, people: dict[str, dict[str, str]]) -> dict[str, str]:
        """The same synthetic person for the same token throughout a case: their name, ID number
        and mobile (a grid report names them by name and mobile only, as grid workers do; a
        department by all three, so only linking makes them one person)."""
        if token not in people:
            name = self.rng.choice(SURNAMES) + self.rng.choice("明华强丽军芳伟静")
            people[token] = {"name": name, "id_number": synthetic_id_number(self.rng, "210202"),
                             "phone": f"1{self.rng.choice('3589')}{self.rng.randint(0, 999999999):09d}"}
        return people[token]

    def _raw(self, spec: CaseEvent, event_id: str, tag: str, region: str, subjects: list[dict[str, str]],
             at: datetime) -> tuple[str, bytes, dict[str, Any]]:
        source = spec.source.value
        attributes = dict(spec.attributes)
        address = attributes.pop("address", None)
        when = at.isoformat()
        if source == "grid_report":
            community = region if region[9:12] != "000" else self.communities[region[:9] + "000"][0]
            grid = f"{community}001"
            return topics.GRID_REPORTS.name, grid.encode(), {
                "event_id": event_id, "grid_code": grid, "reporter": f"GW{grid[-7:]}",
                "category": spec.category, "parties": [{"name": p["name"], "phone": p["phone"]} for p in subjects],
                "location": {"region_code": community, **({"address": address} if address else {})},
                "text": "网格员巡查登记。", "occurred_at": when,
                **({"severity_hint": spec.level.value} if spec.level else {})}
        if source == "dept_alert":
            department, _, category = spec.category.partition(".")
            return topics.DEPT_ALERTS.name, region.encode(), {
                "event_id": event_id, "department": department, "category": category,
                "location": {"region_code": region, **({"address": address} if address else {})},
                "subjects": subjects, "attributes": attributes, "occurred_at": when,
                **({"severity": spec.level.value} if spec.level else {})}
        if source == "broadcast":
            sender, _, identifier = attributes["broadcast"].partition(",")
            msg_type = spec.category.removeprefix("broadcast.").capitalize()
            return topics.EMERGENCY_BROADCASTS.name, region.encode(), {
                "identifier": f"{tag}-{identifier}", "sender": sender, "sent": when,
                "status": attributes.get("status", "Actual"), "msgType": msg_type, "scope": "Public",
                **({"references": [f"{s},{tag}-{i},{when}" for s, _, i in
                                   (ref.partition(",") for ref in attributes["references_resolved"].split(";"))]}
                   if attributes.get("references_resolved") else {}),
                "info": [{"category": ["Met"], "event": HAZARD_EVENTS.get(attributes.get("hazard", ""), "突发事件预警"),
                          "urgency": "Expected",
                          "severity": attributes.get("severity", "Moderate"),
                          "certainty": "Likely", "area": [{"areaDesc": "模拟区域",
                                                           "geocode": [{"valueName": "GB2260", "value": region}]}]}]}
        if source == "broadcast_receipt":
            sender, _, identifier = attributes["broadcast"].partition(",")
            total = int(attributes.get("terminals_total", 12))
            played = int(attributes.get("terminals_played", total if attributes.get("complete") == "true" else total - 3))
            return topics.BROADCAST_RECEIPTS.name, region.encode(), {
                "event_id": event_id, "broadcast_sender": sender, "broadcast_identifier": f"{tag}-{identifier}",
                "region_code": region, "terminals_total": total,
                "terminals_played": played,
                "occurred_at": when}
        raise ValueError(f"no raw input for source {source}")


def _due_after(rule: Any, case: RuleCase) -> timedelta:
    """How long after a case's last event its signal is due: at once, or when an absence's wait
    is over, or, for a register rule's interval (定点联系), by the time the case itself judges it
    (its ``until``); plus the allowed lateness."""
    wait = getattr(rule, "within", None)
    wait = wait if isinstance(wait, timedelta) else timedelta(0)
    if getattr(rule, "every", None) is not None and case.until is not None:
        wait = max(wait, case.until - max(e.at for e in case.events))
    return wait + rule.allowed_lateness


# -- scoring (评估) ------------------------------------------------------------------------------
@dataclass
class RuleScore:
    """One rule's figures. A decoy fired on with background reports among the evidence (a real
    third dispute in the same community that day, say) is counted apart: the rule did what it
    says on events that were really there. Precision counts decoys fired on by their own events."""

    rule_id: str
    incidents: int = 0
    found: int = 0
    decoys: int = 0
    fired_on_decoys: int = 0
    decoys_joined_by_background: int = 0
    from_background: int = 0

    @property
    def recall(self) -> float | None:
        return self.found / self.incidents if self.incidents else None

    @property
    def precision(self) -> float | None:
        fired = self.found + self.fired_on_decoys
        return self.found / fired if fired else None


@dataclass
class Attribution:
    tags: set[str]  # the cases whose events (or chained signals) are in the evidence
    mixed: bool  # some evidence is from no case: background reports


def attribute(signals: list[dict[str, Any]], incidents: list[Incident]) -> dict[str, Attribution]:
    """Signal id → the cases in its evidence, and whether background reports are there too."""
    tags = {i.tag for i in incidents}
    of: dict[str, Attribution] = {s["signal_id"]: Attribution(set(), False) for s in signals}
    for _ in range(MAX_CHAIN + 1):  # a chained signal's attribution follows the signals it rests on
        for s in signals:
            found, mixed = set(), False
            for uid in s["evidence"]:
                own = {t for t in TAG.findall(uid) if t in tags}
                chained = [of[sid] for sid in SIGNAL.findall(uid) if sid in of]
                found |= own | {t for a in chained for t in a.tags}
                mixed |= (not own and not any(a.tags for a in chained)) or any(a.mixed for a in chained)
            of[s["signal_id"]] = Attribution(found, mixed)
    return of


def score(signals: list[dict[str, Any]], incidents: list[Incident], rule_ids: list[str]) -> list[RuleScore]:
    """Per rule: incidents found, decoys fired on, and signals that no injected case explains."""
    by_rule = {r: RuleScore(r) for r in rule_ids}
    of = attribute(signals, incidents)
    fired: dict[tuple[str, str], bool] = {}  # (rule, case) -> fired on the case's own events alone
    for s in signals:
        for t in of[s["signal_id"]].tags:
            key = (s["rule_id"], t)
            fired[key] = fired.get(key, False) or not of[s["signal_id"]].mixed
    for i in incidents:
        rs = by_rule[i.rule_id]
        hit = (i.rule_id, i.tag) in fired
        if i.positive:
            rs.incidents += 1
            rs.found += hit
        else:
            rs.decoys += 1
            rs.fired_on_decoys += hit and fired[(i.rule_id, i.tag)]
            rs.decoys_joined_by_background += hit and not fired[(i.rule_id, i.tag)]
    for s in signals:
        if not of[s["signal_id"]].tags and s["rule_id"] in by_rule:
            by_rule[s["rule_id"]].from_background += 1
    return list(by_rule.values())
