"""Backtests (规则回测): a rule pack over the events stored in ClickHouse, paging no one.

``fengqiao rules backtest --from DAY --to DAY [--dir PACK]`` reads the period's events from
``fengqiao.events``, with a lead-in as long as the pack's longest window (so that the windows
are as full when the period begins as they were live; registrations, which stand however old,
from the beginning) and a tail as long as its longest deadline (what fell due after the period
for a trigger inside it). It runs them through the correlators as the worker's correlate steps
do: people linked per county, a wide area's event again in each county it covers, city-wide
groups regrouped, state per partition of the events topic. Each partition is read in the order
the worker read it (``topic_offset``: an event that arrived late is late again), the partitions
interleaved by event time, and a source holds its partition's time back as it did live, by the
time the events were received. Nothing is sent anywhere and nothing is kept.

Then the signals about the period (their window starting in it) are set beside those the live
run stored: per rule, what both raised, what only one did, and what differs (the level, answered
late or not). With the pack the live run ran the two agree; a changed threshold shows what it
would have changed, before the pack goes live.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import orjson

from schemas.contracts.events import BEIJING, NormalisedEvent, Source
from schemas.contracts.signals import RiskSignal
from streams import topics
from streams.detection.correlator import Correlator, DictStates
from streams.detection.ruleset import AbsenceRule, RegisterRule, split_pack
from streams.detection.windows import Outcome, from_ms, to_ms
from streams.intake import linking
from streams.intake.linking import DictLinks
from streams.runtime.outbox import partition_of
from streams.runtime.topics import Topology
from streams.store.clickhouse import Store
from streams.worker.correlate import ABSENCES_EVERY, grids_in

TIME = "DateTime64(3, 'Asia/Shanghai')"  # a query parameter's type: a time in Beijing time
COLUMNS = ("event_id, publisher, source, category, region_code, grid_code, level, subjects, identities, text, "
           "attributes, drill, topic_partition, topic_offset, toUnixTimestamp64Milli(occurred_at) AS occurred_ms, "
           "toUnixTimestamp64Milli(ingested_at) AS ingested_ms")


@dataclass(frozen=True)
class Found:
    """A signal as a run left it, as a backtest compares it."""

    rule_id: str
    entity: str
    level: str
    window_start: datetime
    answered: bool = False
    rule_version: str = ""

    def shown(self) -> str:
        return self.level + ("，迟到回应" if self.answered else "")


@dataclass
class RuleResult:
    """One rule's signals about the period: live, in the backtest, and how they compare."""

    rule_id: str
    version: str = ""  # the pack's fingerprint of it
    live: int = 0
    backtest: int = 0
    same: int = 0
    only_live: int = 0
    only_backtest: int = 0
    differ: int = 0
    live_versions: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Difference:
    signal_id: str
    rule_id: str
    entity: str
    window_start: datetime
    live: str  # what the live run raised ("" when nothing)
    backtest: str


@dataclass
class Backtest:
    start: datetime
    end: datetime
    events: int
    rules: list[RuleResult]
    differences: list[Difference]

    @property
    def agrees(self) -> bool:
        return not self.differences


def period(first: date, last: date) -> tuple[datetime, datetime]:
    """Beijing days ``first`` to ``last``, both whole: [first 00:00, the day after last 00:00)."""
    return datetime.combine(first, time(), BEIJING), datetime.combine(last + timedelta(days=1), time(), BEIJING)


def margins(rules: Iterable[Any]) -> tuple[timedelta, timedelta]:
    """(lead, tail): the longest window and lateness of the pack, and its longest deadline."""
    rules = list(rules)
    lead = max((r.window + r.allowed_lateness for r in rules), default=timedelta(0))
    deadlines = [(r.within if isinstance(r, AbsenceRule) else (r.within or r.every.longest)) + r.allowed_lateness
                 for r in rules if isinstance(r, AbsenceRule | RegisterRule)]
    return lead, max(deadlines, default=timedelta(0))


def standing_categories(store: Store, rules: Iterable[Any], before: datetime) -> list[str]:
    """The categories of registrations stored before ``before`` that a register rule keeps (they
    stand however old they are)."""
    keepers = [r for r in rules if isinstance(r, RegisterRule)]
    if not keepers:
        return []
    seen = store.query(f"SELECT DISTINCT source, category FROM fengqiao.events WHERE occurred_at < {{t:{TIME}}}",
                       {"t": _ch(before)})
    return sorted({row["category"] for row in seen for r in keepers
                   for f in (r.registers, r.deregisters) if f is not None
                   and f.admits(Source(row["source"]), row["category"])})


def _ch(t: datetime) -> str:
    """A time as ClickHouse reads a DateTime64 parameter, in Beijing time."""
    return t.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass(frozen=True)
class Stored:
    """An event as stored, with where the worker read it."""

    event: NormalisedEvent
    partition: int
    offset: int
    occurred_ms: int
    ingested_ms: int

    def __lt__(self, other: Stored) -> bool:  # interleaving partitions: by event time
        return (self.occurred_ms, self.event.uid) < (other.occurred_ms, other.event.uid)


def read_events(store: Store, rules: list[Any], start: datetime, end: datetime, partitions: int) -> list[Stored]:
    """The events of [start - lead, end + tail), and the registrations before them."""
    lead, tail = margins(rules)
    standing = standing_categories(store, rules, start - lead)
    a, b = f"{{a:{TIME}}}", f"{{b:{TIME}}}"
    rows = store.query(f"SELECT {COLUMNS} FROM fengqiao.events FINAL WHERE (occurred_at >= {a} AND occurred_at < {b}) "
                       f"OR (occurred_at < {a} AND has({{cats:Array(String)}}, category))",
                       {"a": _ch(start - lead), "b": _ch(end + tail), "cats": standing})
    out = []
    for row in rows:
        occurred, ingested = int(row.pop("occurred_ms")), int(row.pop("ingested_ms"))
        where, offset = int(row.pop("topic_partition")), int(row.pop("topic_offset"))
        row |= {"occurred_at": from_ms(occurred), "ingested_at": from_ms(ingested), "level": row["level"] or None,
                "grid_code": row["grid_code"] or None}
        event = NormalisedEvent.model_validate(row)
        if where < 0:  # stored before positions were kept: placed as the worker places it
            where = partition_of(event.partition_key, partitions)
        out.append(Stored(event, where, offset, occurred, ingested))
    return out


def reading_order(events: Iterable[Stored]) -> Iterator[Stored]:
    """Each partition in the order the worker read it (by offset; rows without one first, by
    event time), the partitions interleaved by event time."""
    by_partition: defaultdict[int, list[Stored]] = defaultdict(list)
    for e in events:
        by_partition[e.partition].append(e)
    for queue in by_partition.values():
        queue.sort(key=lambda e: (e.offset >= 0, e.offset if e.offset >= 0 else e.occurred_ms, e.event.uid))
    return heapq.merge(*by_partition.values())


class Clock:
    """The wall clock as the worker knew it: when the event being read was received."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


class Replay:
    """The correlate steps without their topics: the county scope and the regional one, each
    partition's state of its own, and every signal raised kept by id (its last version)."""

    def __init__(self, rules: list[Any], partitions: int, regional_partitions: int, source_idle: float,
                 follow_clock: bool, first_ms: int) -> None:
        local, regional = split_pack(rules)
        self.clock = Clock()
        self.clock.seconds = first_ms / 1000
        self.county = Correlator(local, source_idle=source_idle, wallclock=self.clock)
        self.regional = Correlator(regional, source_idle=source_idle, wallclock=self.clock)
        self.partitions, self.regional_partitions = partitions, regional_partitions
        self.follow_clock = follow_clock
        self.states: defaultdict[tuple[str, int], DictStates] = defaultdict(DictStates)
        self.links: defaultdict[int, DictLinks] = defaultdict(DictLinks)
        self.signals: dict[str, RiskSignal] = {}
        self._maintained = self.clock.seconds

    def enrol(self) -> None:
        """The installed grid register's grids, in the partitions of their counties (日常巡查)."""
        now = self._now()
        for p in range(self.partitions):
            if mine := grids_in(p, self.partitions):
                self._keep(self.county.enrol(p, mine, self.states[("county", p)], now))

    def read(self, stored: Stored) -> None:
        """One event as the correlate steps read it."""
        self.clock.seconds = max(self.clock.seconds, stored.ingested_ms / 1000)
        if self.clock.seconds - self._maintained >= ABSENCES_EVERY:
            self.maintain()
        original, p, now = stored.event, stored.partition, self._now()
        states = self.states[("county", p)]
        event = original
        if original.identities:  # 同人关联, as the county scope links them
            found = linking.resolve(self.links[p], original.region_code[:6], original.identities, stored.occurred_ms)
            self._keep(self.county.merge_people(found.merges, original, p, states, now))
            people = sorted(set(found.people))
            if people != original.subjects:
                event = original.model_copy(update={"subjects": people})
        self._keep(self.county.process(event, p, states, now))
        if self.regional.concerns(event.source, event.category):
            for key in self.regional.regroup_keys(event):
                rp = partition_of(key.encode(), self.regional_partitions)
                self._keep(self.regional.process(event, rp, self.states[("regional", rp)], now, only=key))
        for county in original.reach():  # a wide area, again in each county's partition
            cp = partition_of(county.encode(), self.partitions)
            self._keep(self.county.process(original, cp, self.states[("county", cp)], now, reach=county))

    def maintain(self, clock_ms: int | None = None) -> None:
        """What the steps' periodic work does: deadlines due on watermarks idle sources moved on
        (live, a silent partition's following the clock)."""
        self._maintained = self.clock.seconds
        now = self._now()
        for (scope, p), states in list(self.states.items()):
            correlator = self.county if scope == "county" else self.regional
            clock = clock_ms if clock_ms is not None else (to_ms(now) if self.follow_clock else None)
            self._keep(correlator.advance(p, states, now, clock if correlator.idle(p) else None))

    def _now(self) -> datetime:
        return from_ms(int(self.clock.seconds * 1000))

    def _keep(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            if o.signal is not None:
                self.signals[o.signal.signal_id] = o.signal


def live_signals(store: Store, start: datetime, end: datetime) -> dict[str, Found]:
    rows = store.query(
        "SELECT signal_id, rule_id, entity, level, toUnixTimestamp64Milli(window_start) AS start_ms, "
        "answered_at IS NOT NULL AS answered, rule_version FROM fengqiao.signals FINAL "
        f"WHERE window_start >= {{a:{TIME}}} AND window_start < {{b:{TIME}}}",
        {"a": _ch(start), "b": _ch(end)})
    return {r["signal_id"]: Found(r["rule_id"], r["entity"], r["level"], from_ms(int(r["start_ms"])),
                                  bool(r["answered"]), r["rule_version"]) for r in rows}


def compare(live: dict[str, Found], replayed: dict[str, Found], pack: dict[str, str]
            ) -> tuple[list[RuleResult], list[Difference]]:
    """Per rule of the pack (id -> fingerprint) and of the live run, and the signals that are not
    the same in both runs."""
    results = {rule: RuleResult(rule, version) for rule, version in pack.items()}
    differences = []
    for signal_id in sorted(live.keys() | replayed.keys()):
        a, b = live.get(signal_id), replayed.get(signal_id)
        one = a or b
        assert one is not None
        r = results.setdefault(one.rule_id, RuleResult(one.rule_id))
        r.live += a is not None
        r.backtest += b is not None
        if a is not None and a.rule_version:
            r.live_versions.add(a.rule_version)
        if a is not None and b is not None and a.shown() == b.shown():
            r.same += 1
            continue
        r.only_live += b is None
        r.only_backtest += a is None
        r.differ += a is not None and b is not None
        differences.append(Difference(signal_id, one.rule_id, one.entity, one.window_start,
                                      a.shown() if a else "", b.shown() if b else ""))
    differences.sort(key=lambda d: (d.rule_id, d.window_start, d.entity))
    return sorted(results.values(), key=lambda r: r.rule_id), differences


def backtest(store: Store, rules: list[Any], first: date, last: date, topology: Topology, source_idle: float,
             follow_clock: bool) -> Backtest:
    """Run ``rules`` over the stored events of the days ``first`` to ``last`` and compare."""
    start, end = period(first, last)
    partitions = topology.partitions(topics.EVENTS)
    events = read_events(store, rules, start, end, partitions)
    replay = Replay(rules, partitions, topology.partitions(topics.REGIONAL_EVENTS), source_idle, follow_clock,
                    min((e.ingested_ms for e in events), default=to_ms(start)))
    replay.enrol()
    for stored in reading_order(events):
        replay.read(stored)
    replay.clock.seconds += source_idle + ABSENCES_EVERY  # the sources fall silent: their time moves on
    replay.maintain(to_ms(datetime.now(BEIJING)) if follow_clock else None)
    found = {s.signal_id: Found(s.rule_id, s.entity, s.level.value, s.window_start, s.answered_at is not None)
             for s in replay.signals.values() if start <= s.window_start < end}
    rules_found, differences = compare(live_signals(store, start, end), found, {r.id: r.fingerprint for r in rules})
    return Backtest(start, end, len(events), rules_found, differences)


def as_json(result: Backtest) -> bytes:
    return orjson.dumps({"start": result.start, "end": result.end, "events": result.events,
                         "rules": [{**vars(r), "live_versions": sorted(r.live_versions)} for r in result.rules],
                         "differences": [vars(d) for d in result.differences]})
