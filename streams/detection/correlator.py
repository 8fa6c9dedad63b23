"""The correlator (研判): the loaded rule pack applied to one partition's events at a time.

Each event enters the windows (``detection.windows``) of the rules it matches; a window that
fires raises or updates a signal, a rule's risk score accumulates on its objects
(``detection.risk``), and a raised signal re-enters as an event of source ``signal``, so rules
can chain, with ``uplift`` levels added. Absence deadlines fire on each partition's event-time
watermark, so that a replay raises what the live run raised; live, a partition whose sources
have all fallen silent, with nothing left to read, follows the wall clock instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from schemas.contracts.events import NormalisedEvent, Source
from schemas.contracts.signals import LateEvent, RiskSignal
from schemas.reference.regions import registry
from streams.detection import risk
from streams.detection.risk import RiskPolicy
from streams.detection.ruleset import AbsenceRule, RegisterRule, reaches_places
from streams.detection.windows import (
    MAX_CHAIN_DEPTH,
    Outcome,
    WindowState,
    answer_late,
    enrol,
    entry_of,
    expire,
    from_ms,
    merge,
    observe,
    signal_as_event,
    state_prefix,
    to_ms,
)
from streams.intake.linking import Merge


# -- the rule pack over a store of states ------------------------------------------------------
class States(Protocol):
    """Where window states live: a dict in tests, a partition of the worker's state table in
    production."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any], partition: int) -> None: ...

    def delete(self, key: str) -> None: ...

    def items(self) -> Iterable[tuple[str, dict[str, Any]]]: ...


class DictStates(dict):  # type: ignore[type-arg]
    def put(self, key: str, value: dict[str, Any], partition: int) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


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
        self.late: list[LateEvent] = []  # events too late for a rule's windows, until taken
        self.replace_rules(rules)

    def replace_rules(self, rules: list[Any]) -> dict[str, list[str]]:
        """Take a new rule pack; windows of rules whose definition did not change are kept."""
        before = getattr(self, "prefixes", {})
        self.rules = rules
        self._rules_for: dict[tuple[Source, str], list[Any]] = {}  # (source, category) -> rules it may concern
        self.absence = [r for r in rules if isinstance(r, AbsenceRule | RegisterRule)]  # rules with deadlines
        self.prefixes = {r.id: state_prefix(r) for r in rules}
        self.names = {r.id: r.name for r in rules}  # what an entity_risk explanation calls them
        return {
            "added": sorted(set(self.prefixes) - set(before)),
            "removed": sorted(set(before) - set(self.prefixes)),
            "changed": sorted(i for i in set(before) & set(self.prefixes) if before[i] != self.prefixes[i]),
            "unchanged": sorted(i for i in set(before) & set(self.prefixes) if before[i] == self.prefixes[i]),
        }

    def process(self, event: NormalisedEvent, partition: int, states: States, now: datetime,
                only: str | None = None, reach: str | None = None) -> list[Outcome]:
        """Every signal raised or updated by this event, chained signals and due absences included.
        With ``only``, just that group: a repartitioned event comes once per group it belongs to.
        With ``reach`` (a county), the event is a wide area's copy in that county's partition: it
        only reaches the places there that an absence trigger concerns (its own groups are the
        original's)."""
        outcomes = self._enter(event, partition, states, now, depth=0, only=only, reach=reach)
        watermark = self._watermark(partition, event.source, to_ms(event.occurred_at))
        return outcomes + self._advance(partition, watermark, states, now)

    def concerns(self, source: Source, category: str) -> bool:
        """Whether an event of this source and category can be anything to a rule of the pack."""
        return bool(self._rules(source, category))

    def pass_by(self, partition: int, source: Source, occurred_ms: int, states: States, now: datetime) -> list[Outcome]:
        """An event no rule concerns: it only moves its partition's watermark (due absences)."""
        return self._advance(partition, self._watermark(partition, source, occurred_ms), states, now)

    def advance(self, partition: int, states: States, now: datetime, clock_ms: int | None = None) -> list[Outcome]:
        """Absences due without a new event: once the sources that held a partition's watermark
        back fall silent, it moves on to the latest time seen (called every second or so). Live,
        with ``clock_ms`` (the wall clock, given only when nothing is left to read for this
        partition), a silent partition's watermark follows the clock less ``source_idle``, so
        that a deadline in a place that sends nothing more still falls due; in a replay event
        time alone rules."""
        if not self.idle(partition):
            seen = self._sources.get(partition)
            if not seen or not self._settled():
                return []
            wall = self.wallclock()
            return self._advance(partition, int(min(latest for latest, at in seen.values()
                                                    if wall - at < self.source_idle)), states, now)
        latest = max((t for t, _ in self._sources.get(partition, {}).values()), default=0)
        if clock_ms is not None:
            latest = max(latest, clock_ms - int(self.source_idle * 1000))
        return self._advance(partition, latest, states, now) if latest else []

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions given up or started over: their watermarks and sources are learned again
        from the events read next (and the deadlines of the state rebuilt are checked again)."""
        for p in partitions:
            self.watermarks.pop(p, None)
            self._checked.pop(p, None)
            self._sources.pop(p, None)

    def idle(self, partition: int) -> bool:
        """Whether every source of the partition has been silent for ``source_idle`` (one that
        has heard nothing since the correlator started is, once it has run that long)."""
        if not self._settled():
            return False
        wall = self.wallclock()
        return all(wall - at >= self.source_idle for _, at in self._sources.get(partition, {}).values())

    def clock_would_check(self, partition: int, clock_ms: int) -> bool:
        """Whether the wall clock would move the partition's watermark into a minute whose
        deadlines are not checked yet (what is worth asking the broker whether it is quiet)."""
        t = clock_ms - int(self.source_idle * 1000)
        return bool(self.absence) and t > self.watermarks.get(partition, 0) and t // 60_000 != self._checked.get(partition)

    def _settled(self) -> bool:
        return bool(self.source_idle) and self.wallclock() - self._started >= self.source_idle

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
               depth: int, only: str | None = None, reach: str | None = None) -> list[Outcome]:
        outcomes = []
        for rule in self.rules_for(event):
            if reach is None and isinstance(rule, AbsenceRule):
                self._withdraw(rule, event, partition, states)
            tag = rule.tag(event)
            if tag is None:
                continue
            places = reaches_places(rule, tag)
            if reach is not None:
                if not places:
                    continue
                groups = sorted(self._places_within(rule, reach, states))
            elif places:
                groups = sorted(set(rule.groups(event)) | self._places_within(rule, event.region_code, states))
            else:
                groups = rule.groups(event)
            if only is not None:
                groups = [g for g in groups if g == only]
            for group in groups:
                key = self.prefixes[rule.id] + group
                before = WindowState.from_json(states.get(key))
                if before.unanswered:  # 迟到回应: it may answer a signal raised already
                    before, answered = answer_late(rule, before, entry_of(event, tag), group,
                                                   self.watermarks.get(partition, 0), now)
                    if answered:
                        states.put(key, before.to_json(), partition)
                        outcomes += [Outcome(before, s, s.level) for s in answered]
                outcome = observe(rule, before, event, group, tag, now, partition)
                if outcome.late_ms is not None:
                    self.late.append(self._late(rule, group, before, event, outcome.late_ms, now))
                    continue
                if outcome.state is before:
                    continue
                states.put(key, outcome.state.to_json(), partition)
                if outcome.signal is not None:
                    outcomes.append(outcome)
                    outcomes += self._follow(rule, group, outcome, partition, states, now, depth, only)
        return outcomes

    def merge_people(self, merges: Iterable[Merge], cause: NormalisedEvent, partition: int, states: States,
                     now: datetime) -> list[Outcome]:
        """Two pseudonyms of one county found to be one person (``intake.linking``): the windows of
        every rule grouped by person, and the person's risk, move from the absorbed pseudonym to
        the one kept, joining what is there (``windows.merge``); what that raises or updates is
        returned, chains followed. ``cause``: the event that made the link."""
        outcomes: list[Outcome] = []
        for m in merges:
            for rule in self.rules:
                for key, group, target in self._groups_naming(rule, m, states):
                    tkey = self.prefixes[rule.id] + target
                    outcome = merge(rule, WindowState.from_json(states.get(tkey)), WindowState.from_json(states.get(key)),
                                    group, target, cause.region_code, now)
                    states.delete(key)
                    states.put(tkey, outcome.state.to_json(), partition)
                    if outcome.signal is not None:
                        outcomes.append(outcome)
                        outcomes += self._follow(rule, target, outcome, partition, states, now, depth=0)
            absorbed, kept = f"person:{m.county}|{m.absorbed}", f"person:{m.county}|{m.into}"  # risk objects
            gone = states.get(f"{risk.RULE_ID}|{absorbed}")
            if gone is not None:
                doc, total, before, after = risk.merge(states.get(f"{risk.RULE_ID}|{kept}"), gone, absorbed,
                                                       self.risk_policy)
                states.delete(f"{risk.RULE_ID}|{absorbed}")
                states.put(f"{risk.RULE_ID}|{kept}", doc, partition)
                if after is not None and (before is None or after > before):
                    made = risk.risk_signal("person", f"{m.county}|{m.into}", doc, total, after, self.names, cause.drill,
                                            now)
                    outcomes.append(Outcome(WindowState(), made, before))
        return outcomes

    def _groups_naming(self, rule: Any, m: Merge, states: States) -> list[tuple[str, str, str]]:
        """(state key, group, group with the kept pseudonym) of ``rule``'s windows whose person
        part is the absorbed pseudonym of the merge's county."""
        shift = 0 if rule.within_county or rule.regional else 1  # the county a non-region group is tied to
        at = {i + shift for i, part in enumerate(rule.group_by) if part.field == "subjects"}
        if not at:
            return []
        prefix = self.prefixes[rule.id]
        found = []
        for key, _ in states.items():
            if not key.startswith(prefix):
                continue
            parts = key[len(prefix):].split("|")
            if parts[0][:6] == m.county and any(parts[i] == m.absorbed for i in at if i < len(parts)):
                target = [m.into if i in at and p == m.absorbed else p for i, p in enumerate(parts)]
                found.append((key, "|".join(parts), "|".join(target)))
        return found

    def _follow(self, rule: Any, group: str, outcome: Outcome, partition: int, states: States, now: datetime,
                depth: int, only: str | None = None) -> list[Outcome]:
        """What a signal raised or upgraded leads to, whichever kind of rule raised it (an absence
        as well): the rule's risk score on its objects, and the rules it enters as an event of
        source ``signal`` (chains)."""
        if not outcome.escalated or outcome.signal is None:
            return []
        outcomes = self._accumulate(rule, group, outcome.signal, partition, states, now)
        if depth < MAX_CHAIN_DEPTH:
            outcomes += self._enter(signal_as_event(outcome.signal, now), partition, states, now, depth + 1, only)
        return outcomes

    def _withdraw(self, rule: AbsenceRule, event: NormalisedEvent, partition: int, states: States) -> None:
        """A Cancel (or an Update) ends the checks pending for what it withdraws: a broadcast
        cancelled before its deadline has no coverage gap; an updated one is checked as updated."""
        for group in rule.cancelled_groups(event):
            key = self.prefixes[rule.id] + group
            before = WindowState.from_json(states.get(key))
            if before.pending:
                before.pending = []
                states.put(key, before.to_json(), partition)

    @staticmethod
    def _late(rule: Any, group: str, state: WindowState, event: NormalisedEvent, late_ms: int,
              now: datetime) -> LateEvent:
        signal = state.signal_id(rule.id, group) if state.anchor_ms is not None else ""
        return LateEvent(uid=event.uid, rule_id=rule.id, entity=group, region_code=event.region_code,
                         occurred_at=event.occurred_at, late_by_s=late_ms / 1000, signal_id=signal, noted_at=now,
                         drill=event.drill)

    def take_late(self) -> list[LateEvent]:
        """The late events noted since the last call (迟到事件: not counted by their rules)."""
        late, self.late = self.late, []
        return late

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
        outcomes = []
        for kind, key in risk.objects(rule, group, signal.region_code):
            state_key = f"{risk.RULE_ID}|{kind}:{key}"
            doc, total, before, after = risk.add(states.get(state_key), signal, rule.risk_score,
                                                 to_ms(signal.window_end), self.risk_policy)
            states.put(state_key, doc, partition)
            if after is not None and (before is None or after > before):
                made = risk.risk_signal(kind, key, doc, total, after, self.names, signal.drill, now)
                outcomes.append(Outcome(WindowState(), made, before))
        return outcomes

    def _places_within(self, rule: Any, region_code: str, states: States) -> set[str]:
        """Groups already held under a warning's area: a county-wide cold-wave warning reaches
        every community of the county that has a ``requires`` record, every registered person
        of a register rule there."""
        area = registry().get(region_code).prefix if region_code in registry() else region_code
        own = self.prefixes[rule.id]
        return {key[len(own):] for key, _ in states.items() if key.startswith(own + area)}

    def enrol(self, partition: int, grids: Iterable[tuple[str, str, int]], states: States,
              now: datetime) -> list[Outcome]:
        """The grids of the installed register, (community, grid code, registered at ms), as
        members of the register rules that keep them (日常巡查): a grid that never reports is
        owed a report from the day its register says. What is already a member stays as it is;
        what falls due at once (a register older than its interval) is returned."""
        keeping = [r for r in self.rules if isinstance(r, RegisterRule) and r.grid_register]
        for community, code, at_ms in grids:
            probe = NormalisedEvent(event_id=code, publisher="register", source=Source.register,
                                    category="register.member", region_code=community, grid_code=code,
                                    occurred_at=from_ms(at_ms), ingested_at=now)
            for rule in keeping:
                for group in rule.groups(probe):
                    key = self.prefixes[rule.id] + group
                    state = enrol(rule, WindowState.from_json(states.get(key)), f"register:{code}", at_ms, partition)
                    if state is not None:
                        states.put(key, state.to_json(), partition)
        return self.expire_due(partition, states, now) if keeping else []

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
                outcomes += self._follow(rule, group, outcome, partition, states, now, depth=0)
        return outcomes
