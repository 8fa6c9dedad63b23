"""Correlation (研判): sliding event-time windows per rule and group, and the signals they raise.

The state of one (rule, group) is a small JSON document kept in the worker's state table, so it
survives a worker restart through the table's changelog. Everything here is pure: the same events in the
same order give the same states and the same signal ids, which is what makes a replay or a
restart safe. Absence deadlines fire on each partition's event-time watermark (the latest event
time seen there), never on the wall clock, for the same reason. A raised signal re-enters the
correlator as an event of source ``signal``, so rules can chain, with ``uplift`` levels added.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Protocol

from schemas.contracts.events import BEIJING, NormalisedEvent, Source
from schemas.contracts.levels import RiskLevel
from schemas.reference.regions import Level, pad, registry
from schemas.contracts.signals import Evidence, RiskSignal
from streams.detection import risk
from streams.detection.risk import RiskPolicy
from streams.detection.ruleset import AbsenceRule, TemporalRule, ValueCountRule

MAX_CHAIN_DEPTH = 3


def to_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).astimezone(BEIJING)


def raise_level(level: RiskLevel, steps: int) -> RiskLevel:
    grade = max(1, level.grade - steps)
    return next(lv for lv in RiskLevel if lv.grade == grade)


@dataclass
class WindowState:
    """The events of one group inside the rule's window, and the open incident if any."""

    # [occurred_ms, uid, source, category, tag, level, drill]: tag is what the event is to the rule
    entries: list[list[Any]] = field(default_factory=list)
    anchor_ms: int | None = None  # first event of the open incident: part of the signal id
    version: int = 0
    level: str | None = None
    raised_ms: int | None = None
    pending: list[list[Any]] = field(default_factory=list)  # absence: [deadline_ms, trigger_ms, uid]
    partition: int | None = None  # where its events live, for deadlines fired by a watermark

    def to_json(self) -> dict[str, Any]:
        """A copy down to the entries (what ``asdict`` makes, without its recursion: a third of
        the rules' time went there)."""
        return {name: [list(x) for x in v] if isinstance(v := getattr(self, name), list) else v
                for name in _WINDOW_FIELDS}

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> WindowState:
        return cls(**doc) if doc else cls()


_WINDOW_FIELDS = tuple(f.name for f in fields(WindowState))


@dataclass(frozen=True)
class Outcome:
    state: WindowState
    signal: RiskSignal | None = None
    previous_level: RiskLevel | None = None  # the level before this update, None when new

    @property
    def escalated(self) -> bool:
        """New, or raised to a higher level: a reason to notify centres again."""
        return self.signal is not None and (self.previous_level is None or self.signal.level > self.previous_level)


def state_prefix(rule: Any) -> str:
    """``id@fingerprint|``: a rule whose definition changes starts with fresh windows, while an
    unchanged rule keeps its own across a reload."""
    definition = rule.model_dump_json(exclude={"tests", "name", "basis", "summary"})
    return f"{rule.id}@{hashlib.sha256(definition.encode()).hexdigest()[:8]}|"


# -- when a rule's window holds enough ---------------------------------------------------------
def fired(rule: Any, entries: list[list[Any]]) -> bool:
    if isinstance(rule, ValueCountRule):
        return len({e[4] for e in entries}) >= rule.threshold
    if isinstance(rule, TemporalRule):
        if rule.type == "temporal":
            counts: dict[str, int] = {}
            for e in entries:
                counts[e[4]] = counts.get(e[4], 0) + 1
            return all(counts.get(name, 0) >= c.min_count for name, c in rule.conditions.items())
        return _in_order(rule, entries)
    return len(entries) >= rule.threshold


def firing_span(rule: Any, entries: list[list[Any]], t: int, window_ms: int) -> list[list[Any]] | None:
    """The first window of the rule's length that holds the event at ``t`` and enough to fire.
    Windows slide: one may start at any entry up to a window before ``t``. A late event (within
    allowed lateness) joins the windows it belongs to; it never makes a window longer."""
    for start in sorted({e[0] for e in entries if t - window_ms <= e[0] <= t}):
        span = [e for e in entries if start <= e[0] <= start + window_ms]
        if fired(rule, span):
            return span
    return None


def _in_order(rule: TemporalRule, entries: list[list[Any]]) -> bool:
    """Each condition met min_count times, each after the previous condition was met."""
    after, i = -1, 0
    for name, cond in rule.conditions.items():
        seen = 0
        while i < len(entries) and seen < cond.min_count:
            if entries[i][4] == name and entries[i][0] >= after:
                seen += 1
                if seen == cond.min_count:
                    after = entries[i][0]
            i += 1
        if seen < cond.min_count:
            return False
    return True


def observe(rule: Any, state: WindowState, event: NormalisedEvent, group: str, tag: str, now: datetime,
            partition: int | None = None) -> Outcome:
    """Add one event to its group's window and say whether a signal is raised or updated."""
    t, uid = to_ms(event.occurred_at), event.uid
    window_ms, late_ms = rule.window_ms, rule.late_ms
    latest = max(t, state.entries[-1][0]) if state.entries else t  # entries are kept in time order
    if t < latest - window_ms - late_ms or any(e[1] == uid for e in state.entries):
        return Outcome(state)  # too late for any open window, or seen before (redelivery)
    entry = [t, uid, event.source.value, event.category, tag, event.level.value if event.level else None,
             event.drill]
    entries = [e for e in sorted([*state.entries, entry]) if e[0] >= latest - window_ms - late_ms]
    new = WindowState(entries, state.anchor_ms, state.version, state.level, state.raised_ms,
                      list(state.pending), partition if partition is not None else state.partition)
    if isinstance(rule, AbsenceRule):
        return Outcome(_absence_step(rule, new, tag, t, event.uid))
    span = firing_span(rule, entries, t, window_ms)
    if span is None:
        if fired(rule, [e for e in entries if e[0] >= latest - window_ms]):
            return Outcome(new)  # a late event outside the open incident: kept, nothing raised
        new.anchor_ms, new.version, new.level, new.raised_ms = None, 0, None, None
        return Outcome(new)
    entries = span
    previous = RiskLevel(state.level) if state.anchor_ms is not None and state.level else None
    if new.anchor_ms is None:
        new.anchor_ms, new.version, new.raised_ms = span[0][0], 0, to_ms(now)
    new.version += 1
    level = _level(rule, entries)
    if previous:
        level = max(level, previous)
    new.level = level.value
    region = region_of(rule, group, event.region_code)
    return Outcome(new, make_signal(rule, new, group, level, region, event.drill, now, entries), previous)


def _level(rule: Any, entries: list[list[Any]]) -> RiskLevel:
    chained = [RiskLevel(e[5]) for e in entries if e[2] == Source.signal.value and e[5]]
    if not chained:
        return rule.level
    return raise_level(max([rule.level, *chained]), rule.uplift)


def _absence_step(rule: AbsenceRule, state: WindowState, tag: str, t: int, uid: str) -> WindowState:
    if tag == "trigger":
        deadline = t + rule.within_ms
        required = rule.requires is None or any(e[4] == "requires" for e in state.entries)
        # an expected event read before its trigger (another source's topic ran ahead) still counts
        answered = any(e[4] == "expected" and t <= e[0] <= deadline for e in state.entries)
        if required and not answered and not any(p[2] == uid for p in state.pending):
            state.pending.append([deadline, t, uid])
    elif tag == "expected":  # a visit after a trigger and before its deadline satisfies it
        state.pending = [p for p in state.pending if not (p[1] <= t <= p[0])]
    return state


def expire(rule: AbsenceRule, state: WindowState, group: str, watermark_ms: int, now: datetime) -> list[Outcome]:
    """Signals for triggers whose deadline (and allowed lateness) the watermark has passed."""
    late_ms = rule.late_ms
    due = [p for p in state.pending if p[0] + late_ms <= watermark_ms]
    if not due:
        return []
    outcomes = []
    for _deadline, trigger_ms, uid in due:
        state = WindowState(state.entries, trigger_ms, 1, rule.level.value, to_ms(now),
                            [p for p in state.pending if p[2] != uid], state.partition)
        evidence = [e for e in state.entries if e[1] == uid or e[4] == "requires"]
        drill = any(e[1] == uid and e[6:7] == [True] for e in state.entries)
        region = region_of(rule, group, "")
        outcomes.append(Outcome(state, make_signal(rule, state, group, rule.level, region, drill, now, evidence)))
    return outcomes


def region_of(rule: Any, group: str, fallback: str) -> str:
    """The 12-digit region a signal is about: its group's region when it groups by region."""
    first = rule.group_by[0]
    return pad(group.split("|", 1)[0]) if first.field == "region_code" else fallback


def make_signal(rule: Any, state: WindowState, group: str, level: RiskLevel, region_code: str, drill: bool,
                now: datetime, entries: list[list[Any]]) -> RiskSignal:
    entity_level = rule.group_by[0].level or Level.community
    shown = entries[-rule.max_evidence:]
    evidence = [Evidence(uid=uid, source=Source(source), category=category, occurred_at=from_ms(ms))
                for ms, uid, source, category, *_ in shown]
    anchor = from_ms(state.anchor_ms or 0)
    place = registry().full_name(region_code) if region_code in registry() else region_code
    summary = rule.summary.format(place=place, count=len(entries), rule=rule.name,
                                  window_hours=round(rule.window.total_seconds() / 3600),
                                  window_days=round(rule.window.total_seconds() / 86400))
    chain = sorted({e[3].removeprefix("signal.") for e in entries if e[2] == Source.signal.value})
    return RiskSignal(
        signal_id=RiskSignal.make_id(rule.id, group, anchor),
        version=state.version,
        rule_id=rule.id,
        rule_name=rule.name,
        level=level,
        entity_level=entity_level,
        entity=group,
        region_code=region_code,
        window_start=anchor,
        window_end=from_ms(max([state.anchor_ms or 0, *(e[0] for e in entries)])),
        raised_at=from_ms(state.raised_ms or to_ms(now)),
        updated_at=now,
        evidence=evidence,
        summary=summary,
        rule_chain=[*chain, rule.id],
        drill=drill,
    )


def signal_as_event(signal: RiskSignal, now: datetime) -> NormalisedEvent:
    """A raised signal as an event, so that rules can take it as evidence (chaining)."""
    return NormalisedEvent(
        event_id=signal.signal_id, publisher="signal", source=Source.signal,
        category=f"signal.{signal.rule_id}", region_code=signal.region_code, occurred_at=signal.window_end,
        ingested_at=now, level=signal.level, drill=signal.drill,
    )


# -- the rule pack over a store of states ------------------------------------------------------
class States(Protocol):
    """Where window states live: a dict in tests, a partition of the worker's state table in
    production."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any], partition: int) -> None: ...

    def items(self) -> Iterable[tuple[str, dict[str, Any]]]: ...


class DictStates(dict):  # type: ignore[type-arg]
    def put(self, key: str, value: dict[str, Any], partition: int) -> None:
        self[key] = value


class Correlator:
    """The loaded rule pack applied to a stream of events, one partition's order at a time."""

    def __init__(self, rules: list[Any], risk_policy: RiskPolicy | None = None, source_idle: float = 0.0,
                 wallclock: Callable[[], float] = time.monotonic) -> None:
        """``source_idle``: seconds of silence after which a source no longer holds a partition's
        watermark back (0: the watermark is simply the latest event time seen)."""
        self.risk_policy = risk_policy or RiskPolicy()
        self.watermarks: dict[int, int] = {}  # partition -> event-time watermark (ms)
        self.source_idle, self.wallclock = source_idle, wallclock
        self._started = wallclock()
        self._sources: dict[int, dict[str, list[float]]] = {}  # partition -> source -> [latest ms, seen at]
        self._checked: dict[int, int] = {}
        self.replace_rules(rules)

    def replace_rules(self, rules: list[Any]) -> dict[str, list[str]]:
        """Take a new rule pack; windows of rules whose definition did not change are kept."""
        before = getattr(self, "prefixes", {})
        self.rules = rules
        self._rules_for: dict[tuple[Source, str], list[Any]] = {}  # (source, category) -> rules it may concern
        self.absence = [r for r in rules if isinstance(r, AbsenceRule)]
        self.prefixes = {r.id: state_prefix(r) for r in rules}
        return {
            "added": sorted(set(self.prefixes) - set(before)),
            "removed": sorted(set(before) - set(self.prefixes)),
            "changed": sorted(i for i in set(before) & set(self.prefixes) if before[i] != self.prefixes[i]),
            "unchanged": sorted(i for i in set(before) & set(self.prefixes) if before[i] == self.prefixes[i]),
        }

    def process(self, event: NormalisedEvent, partition: int, states: States, now: datetime,
                only: str | None = None) -> list[Outcome]:
        """Every signal raised or updated by this event, chained signals and due absences included.
        With ``only``, just that group: a repartitioned event comes once per group it belongs to."""
        outcomes = self._enter(event, partition, states, now, depth=0, only=only)
        watermark = self._watermark(partition, event.source, to_ms(event.occurred_at))
        return outcomes + self._advance(partition, watermark, states, now)

    def concerns(self, source: Source, category: str) -> bool:
        """Whether an event of this source and category can be anything to a rule of the pack."""
        return bool(self._rules(source, category))

    def pass_by(self, partition: int, source: Source, occurred_ms: int, states: States, now: datetime) -> list[Outcome]:
        """An event no rule concerns: it only moves its partition's watermark (due absences)."""
        return self._advance(partition, self._watermark(partition, source, occurred_ms), states, now)

    def advance(self, partition: int, states: States, now: datetime) -> list[Outcome]:
        """Absences due without a new event: once the sources that held a partition's watermark
        back fall silent, it moves on to the latest time seen (called every second or so)."""
        seen = self._sources.get(partition)
        if not seen or not self.source_idle or self.wallclock() - self._started < self.source_idle:
            return []
        wall = self.wallclock()
        live = [latest for latest, at in seen.values() if wall - at < self.source_idle]
        return self._advance(partition, int(min(live) if live else max(t for t, _ in seen.values())), states, now)

    def _advance(self, partition: int, t: int, states: States, now: datetime) -> list[Outcome]:
        if t <= self.watermarks.get(partition, 0):
            return []
        self.watermarks[partition] = t
        if not self.absence or t // 60_000 == self._checked.get(partition):
            return []
        self._checked[partition] = t // 60_000
        return self.expire_due(partition, states, now)

    def _watermark(self, partition: int, source: Source, t: int) -> int:
        """The partition's event time, held back by the slowest source still publishing.

        Sources reach the events topic from input topics of their own, so one may run ahead of
        another (the validate step aligns them only within FENGQIAO_INPUT_ALIGNMENT_SECONDS, and
        a lagging grid back-end may publish late): were the watermark the latest time of any
        source, an absence rule would declare a welfare visit missing that is only still on its
        way. A source silent for ``source_idle`` seconds stops holding it back, and none does
        until the correlator has run that long."""
        if not self.source_idle:
            return t
        if source is Source.signal:  # derived: its time is that of an input already counted
            return self.watermarks.get(partition, 0)
        wall = self.wallclock()
        seen = self._sources.setdefault(partition, {}).setdefault(source.value, [t, wall])
        seen[0], seen[1] = max(seen[0], t), wall
        if wall - self._started < self.source_idle:
            return self.watermarks.get(partition, 0)
        live = [latest for latest, at in self._sources[partition].values() if wall - at < self.source_idle]
        return int(min(live)) if live else t

    def _enter(self, event: NormalisedEvent, partition: int, states: States, now: datetime,
               depth: int, only: str | None = None) -> list[Outcome]:
        outcomes = []
        for rule in self.rules_for(event):
            tag = rule.tag(event)
            if tag is None:
                continue
            groups = rule.groups(event)
            if isinstance(rule, AbsenceRule) and tag == "trigger" and rule.requires is not None:
                groups = sorted(set(groups) | self._places_within(rule, event.region_code, states))
            if only is not None:
                groups = [g for g in groups if g == only]
            for group in groups:
                key = self.prefixes[rule.id] + group
                before = WindowState.from_json(states.get(key))
                outcome = observe(rule, before, event, group, tag, now, partition)
                if outcome.state is before:
                    continue
                states.put(key, outcome.state.to_json(), partition)
                if outcome.signal is not None:
                    outcomes.append(outcome)
                    if outcome.escalated:
                        outcomes += self._accumulate(rule, group, outcome.signal, partition, states, now)
                        if depth < MAX_CHAIN_DEPTH:
                            outcomes += self._enter(signal_as_event(outcome.signal, now), partition, states, now,
                                                    depth + 1, only)
        return outcomes

    def rules_for(self, event: NormalisedEvent) -> list[Any]:
        """The rules an event of its source and category can be anything to (most are none)."""
        return self._rules(event.source, event.category)

    def _rules(self, source: Source, category: str) -> list[Any]:
        rules = self._rules_for.get((source, category))
        if rules is None:
            rules = self._rules_for[(source, category)] = [r for r in self.rules if r.admits(source, category)]
        return rules

    def regroup_keys(self, event: NormalisedEvent) -> list[str]:
        """The groups of this pack's rules an event belongs to: where a repartition sends it."""
        return sorted({g for rule in self.rules_for(event) if rule.tag(event) is not None for g in rule.groups(event)})

    def _accumulate(self, rule: Any, group: str, signal: RiskSignal, partition: int, states: States,
                    now: datetime) -> list[Outcome]:
        """Add the rule's risk score to the signal's risk objects; a level crossed raises or
        upgrades the object's entity_risk signal."""
        if not rule.risk_score:
            return []
        names = {r.id: r.name for r in self.rules}
        outcomes = []
        for kind, key in risk.objects(rule, group, signal.region_code):
            state_key = f"{risk.RULE_ID}|{kind}:{key}"
            doc, total, before, after = risk.add(states.get(state_key), signal, rule.risk_score,
                                                 to_ms(signal.window_end), self.risk_policy)
            states.put(state_key, doc, partition)
            if after is not None and (before is None or after > before):
                made = risk.risk_signal(kind, key, doc, total, after, names, signal.drill, now)
                outcomes.append(Outcome(WindowState(), made, before))
        return outcomes

    def _places_within(self, rule: AbsenceRule, region_code: str, states: States) -> set[str]:
        """Groups already held under a warning's area: a county-wide cold-wave warning reaches
        every community of the county that has a ``requires`` record."""
        area = registry().get(region_code).prefix if region_code in registry() else region_code
        own = self.prefixes[rule.id]
        return {key[len(own):] for key, _ in states.items() if key.startswith(own + area)}

    def expire_due(self, partition: int, states: States, now: datetime) -> list[Outcome]:
        """Signals for absence triggers of this partition whose deadline its watermark passed;
        one pass over the states, whatever the number of absence rules."""
        watermark = self.watermarks.get(partition, 0)
        rule_of = {self.prefixes[r.id]: r for r in self.absence}  # "id@fingerprint|" -> rule
        outcomes = []
        for key, doc in list(states.items()):
            if not doc.get("pending") or doc.get("partition") != partition:
                continue
            prefix, _, group = key.partition("|")
            rule = rule_of.get(prefix + "|")
            if rule is None:
                continue
            for outcome in expire(rule, WindowState.from_json(doc), group, watermark, now):
                states.put(key, outcome.state.to_json(), partition)
                outcomes.append(outcome)
        return outcomes
