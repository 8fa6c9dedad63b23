"""The correlate step (研判、分级推送): each event enters the windows of the rules it matches; a
signal raised or updated is planned into notices (``notify.planning``) and sent.

The county scope reads ``events`` and also repartitions each event to the city-wide groups it
belongs to (``events-regional``); the regional scope (rules grouped coarser than a county) is
fed only the group an event came keyed by.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, Protocol

import orjson
from aiokafka import TopicPartition

from schemas.contracts.events import BEIJING, NormalisedEvent, Source
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import CentreNotice, LateEvent, RiskSignal
from schemas.contracts.silences import Silence
from schemas.reference.regions import registry
from streams import topics
from streams.detection.correlator import Correlator
from streams.detection.windows import Outcome, WindowState, state_format, to_ms
from streams.intake import linking
from streams.intake.linking import links_format
from streams.metrics import Metrics
from streams.notify.planning import Notified, channel, plan
from streams.notify.routing import Policy, Repeats
from streams.notify.silences import silenced_by
from streams.runtime.outbox import Outbox, Output, partition_of
from streams.runtime.runner import Batch, Partitions, Step
from streams.runtime.state import StateTable

log = logging.getLogger(__name__)

SWEEP_EVERY = 3600.0  # seconds between sweeps of notifications of signals long closed
NOTIFIED_KEPT_MS = 90 * 86_400_000  # how long a signal's last notification is remembered
RULE_TIMING_EVERY = 8  # of the events rules take, one in this many is timed for the metric
ABSENCES_EVERY = 1.0  # seconds: absences fall due on watermarks that idle sources move on
HELD = "held|"  # notified-table key prefix of a signal a silence holds back (静默), to page when it ends
HELD_OPEN = timedelta(days=1)  # how long an entity risk held by a silence is still worth paging


def grids_in(partition: int, partitions: int) -> list[tuple[str, str, int]]:
    """The installed grid register's grids (网格台账) whose county lives in ``partition`` of the
    events topic's ``partitions``: (community, grid code, registered since, in ms)."""
    return [(g.community, g.code, to_ms(datetime.combine(date.fromisoformat(g.since), dt_time(), BEIJING)))
            for g in registry().grids.values()
            if g.since and partition_of(g.community[:6].encode(), partitions) == partition]


class Observer(Protocol):
    """Who watches the pipeline as it works (the console of ``fengqiao up``)."""

    def on_signal(self, signal: RiskSignal, new: bool) -> None: ...

    def on_notice(self, notice: CentreNotice) -> None: ...


class Quiet:
    def on_signal(self, signal: RiskSignal, new: bool) -> None:
        pass

    def on_notice(self, notice: CentreNotice) -> None:
        pass


@dataclass
class Raised:
    """A signal a batch raised or updated, with the notices it sent for it."""

    signal: RiskSignal
    new: bool
    notices: list[CentreNotice]
    cause: NormalisedEvent | None
    unrouted: bool = False  # no centre holds its region
    silenced: bool = False  # held back by a silence


class PartitionStates:
    """One partition of a state table, as the correlator reads its window states (``States``)
    and the linker its person links (``linking.Links``)."""

    def __init__(self, table: StateTable, partition: int) -> None:
        self.table, self.partition, self.held = table, partition, table.of(partition)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.held.get(key)

    def put(self, key: str, value: dict[str, Any], partition: int | None = None) -> None:
        self.table.put(self.partition, key, value)

    def delete(self, key: str) -> None:
        self.table.delete(self.partition, key)

    def items(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return self.held.items()


class Correlate(Step):
    maintain_every = ABSENCES_EVERY

    def __init__(self, correlator: Correlator, regional: Correlator | None, output: Output, metrics: Metrics,
                 observer: Observer, clock: Callable[[], datetime], policy: dict[RiskLevel, Policy],
                 repeats: Repeats, app_id: str, quiet: Callable[[], Awaitable[set[int]]] | None = None,
                 console: str = "", silences: Callable[[], Iterable[Silence]] = tuple) -> None:
        """``regional``: the city-wide correlator this (county) scope repartitions for; None when
        this is the regional scope itself. ``quiet``: the partitions of this step with nothing
        left to read anywhere upstream, asked of the broker; given, a silent partition's
        watermark follows the wall clock (live), else event time alone (a replay)."""
        self.correlator, self.regional, self.output = correlator, regional, output
        self.metrics, self.observer, self.clock = metrics, observer, clock
        self.policy, self.repeats = policy, repeats
        self.quiet = quiet
        self.console = console  # the console's address, for the case link in every notice
        self.silences = silences  # the silences (静默) in force, as the silences topic has them
        source = topics.EVENTS if regional is not None else topics.REGIONAL_EVENTS
        suffix = "" if regional is not None else "-regional"
        self.name = f"correlate{suffix}"
        self.consumes = (source,)
        # 关联窗口: window state per (rule, group); 通知节流: when each signal last notified its
        # centres, and the deadlines it gave them.
        self.windows = StateTable(f"correlation-windows{suffix}", source, app_id, check=state_format)
        self.notified = StateTable(f"notified{suffix}", source, app_id)
        self.tables: tuple[StateTable, ...] = (self.windows, self.notified)
        if regional is not None:  # 同人关联: people are linked where their county's events are read
            self.links = StateTable("person-links", source, app_id, check=links_format)
            self.tables += (self.links,)
        self.enrolled: set[int] = set()  # partitions whose grids of the register are members (日常巡查)
        self.timer = metrics.rule_seconds.labels("county" if regional is not None else "regional")
        self._timed = 0
        self._swept = 0.0
        self._in_force: frozenset[str] | None = None  # the silences in force at the last look

    async def process(self, batch: Batch) -> None:
        outbox, raised = self.output.outbox(), []
        now, regional = self.clock(), self.regional
        self.correlator.take_late()  # what a batch that failed noted: it is read again
        for r in batch:
            doc = orjson.loads(r.value)
            source, states = Source(doc["source"]), PartitionStates(self.windows, r.partition)
            reach = topics.reaching(r.headers) if regional is not None else None  # a wide area's copy
            wider = regional is not None and reach is None and regional.concerns(source, doc["category"])
            event, outcomes, relinked = None, [], False
            if regional is not None and reach is None and doc.get("identities"):  # people named: link them
                parsed = NormalisedEvent.model_validate(doc)
                event, outcomes = self._link(outbox, parsed, r.partition, states, now)
                relinked = event is not parsed
            if wider or self.correlator.concerns(source, doc["category"]):
                event = event or NormalisedEvent.model_validate(doc)  # from the parsed JSON: faster than from bytes
                self._timed += 1
                started = time.perf_counter() if self._timed % RULE_TIMING_EVERY == 0 else None
                outcomes += self.correlator.process(event, r.partition, states, now,
                                                    only=r.key.decode() if regional is None else None, reach=reach)
                if started is not None:
                    self.timer.observe(time.perf_counter() - started)
            else:  # most events: no rule takes them, they only move the watermark on
                occurred = to_ms(datetime.fromisoformat(doc["occurred_at"]))
                outcomes += self.correlator.pass_by(r.partition, source, occurred, states, now)
            raised += [self._raise(outbox, outcome, event, r.partition, now) for outcome in outcomes]
            if wider and event is not None:
                value = event.model_dump_json().encode() if relinked else r.value
                for key in regional.regroup_keys(event):  # 重分区: once per city-wide group
                    outbox.add(topics.REGIONAL_EVENTS.name, key.encode(), value)
        late = self.correlator.take_late()
        for note in late:
            outbox.add(topics.LATE_EVENTS.name, note.uid.encode(), note.model_dump_json().encode())
        await self._settle(outbox, raised, now, late)

    def _link(self, outbox: Outbox, event: NormalisedEvent, partition: int, states: PartitionStates,
              now: datetime) -> tuple[NormalisedEvent, list[Outcome]]:
        """The event's people resolved to one person pseudonym each (同人关联), the links it made
        onto ``person-links``, and what merging two people's windows raised or updated."""
        found = linking.resolve(PartitionStates(self.links, partition), event.region_code[:6], event.identities,
                                to_ms(event.occurred_at))
        outcomes = self.correlator.merge_people(found.merges, event, partition, states, now)
        for link in found.records(event, now):
            outbox.add(topics.PERSON_LINKS.name, link.identifier.encode(), link.model_dump_json().encode())
        people = sorted(set(found.people))
        if people != event.subjects:
            event = event.model_copy(update={"subjects": people})
        return event, outcomes

    def _raise(self, outbox: Outbox, outcome: Outcome, cause: NormalisedEvent | None, partition: int,
               now: datetime) -> Raised:
        """A raised or updated signal into the outbox, with what its plan sends (``cause`` is the
        event that completed it, if an event did: a due absence has none)."""
        signal = outcome.signal
        assert signal is not None
        muted = silenced_by(self.silences(), signal, now)
        held = HELD + signal.signal_id
        if muted:  # 静默: stored and shown as silenced, no centre paged; kept to page when the silence ends
            signal = signal.model_copy(update={"silenced_by": muted})
            outbox.add(topics.SIGNALS.name, signal.signal_id.encode(), signal.model_dump_json().encode())
            if signal.signal_id not in self.notified.of(partition):
                self.notified.put(partition, held, {"t": to_ms(now), "signal": signal.model_dump(mode="json")})
            return Raised(signal, outcome.previous_level is None, [], cause, silenced=True)
        if held in self.notified.of(partition):
            self.notified.delete(partition, held)
        outbox.add(topics.SIGNALS.name, signal.signal_id.encode(), signal.model_dump_json().encode())
        last = Notified.from_json(self.notified.of(partition).get(signal.signal_id))
        # never told (a silence held it until now): the centres hear of it as new, unless all there
        # is to say is that it was answered after all
        fresh = outcome.escalated or (last is None and signal.answered_at is None)
        sent = plan(signal, fresh, last, now, self.policy, self.repeats, self.console)
        if sent.notified is not None:
            self.notified.put(partition, signal.signal_id, sent.notified.to_json())
        for notice in sent.notices:
            outbox.add(channel(notice).name, notice.centre_code.encode(), notice.model_dump_json().encode())
        if sent.release is not None:
            outbox.add(topics.BROADCAST_REQUESTS.name, signal.signal_id.encode(),
                       sent.release.model_dump_json(by_alias=True, exclude_none=True).encode())
        return Raised(signal, outcome.previous_level is None, sent.notices, cause, sent.unrouted)

    async def _settle(self, outbox: Outbox, raised: list[Raised], now: datetime,
                      late: Iterable[LateEvent] = ()) -> None:
        """In this order: the outputs on the broker, then counted and shown, then the state that
        accounts for them on its changelog."""
        await outbox.send()
        self._announce(raised, now)
        for note in late:
            self.metrics.events_late.labels(note.rule_id).inc()
        await self.output.flush(self.tables)

    def _announce(self, raised: list[Raised], now: datetime) -> None:
        """Once the broker has them: signals and notices counted, and shown to whoever watches."""
        m, observer = self.metrics, self.observer
        for r in raised:
            m.signals.labels(r.signal.rule_id, r.signal.level.value, "new" if r.new else "update").inc()
            if r.silenced:
                m.signals_silenced.labels(r.signal.rule_id).inc()
            if r.unrouted:
                m.signals_unrouted.labels(r.signal.rule_id).inc()
                log.error("signal %s (%s) about %s routes to no centre of the registry: stored, for the platform's "
                          "operators", r.signal.signal_id, r.signal.rule_id, r.signal.region_code)
            observer.on_signal(r.signal, r.new)
            for notice in r.notices:
                m.notices.labels(channel(notice).name, notice.centre_level.value).inc()
                if r.cause is not None:
                    m.notice_latency.observe(max(0.0, (now - r.cause.ingested_at).total_seconds()))
                    m.notice_latency_event_time.observe(max(0.0, (now - r.cause.occurred_at).total_seconds()))
                observer.on_notice(notice)

    def revoked(self, partitions: set[TopicPartition]) -> None:
        self.correlator.forget(tp.partition for tp in partitions)
        self.enrolled -= {tp.partition for tp in partitions}
        self._in_force = None  # the partitions assigned next may hold signals a silence let go meanwhile

    def _enrol(self, partition: int, now: datetime) -> list[Outcome]:
        """The installed grid register's grids whose county lives in this partition, as members
        of the rules that keep them (once per assignment: members already kept stay as they are)."""
        self.enrolled.add(partition)
        count = self.output.partitions.get(topics.EVENTS.name)
        mine = grids_in(partition, count) if count else []
        return self.correlator.enrol(partition, mine, PartitionStates(self.windows, partition), now) if mine else []

    def _released(self, partition: int, now: datetime) -> list[Outcome]:
        """Signals a silence held that no silence holds now (it ended, or was expired), their
        incident still open (updated within its rule's window): they page as new. Those whose
        incident is over are let go unpaged: it is on the console as silenced."""
        out = []
        for key, doc in list(self.notified.of(partition).items()):
            if not key.startswith(HELD):
                continue
            signal = RiskSignal.model_validate(doc["signal"])
            if silenced_by(self.silences(), signal, now):
                continue
            self.notified.delete(partition, key)
            rule = next((r for r in self.correlator.rules if r.id == signal.rule_id), None)
            if now - signal.window_end <= (rule.window if rule is not None else HELD_OPEN):
                out.append(Outcome(WindowState(), signal.model_copy(update={"silenced_by": [], "updated_at": now})))
        return out

    async def maintain(self, partitions: Partitions) -> None:
        """Absences that fell due while no event came; signals a silence held, once it ends;
        and, hourly, notifications of signals long closed forgotten (a signal stops updating
        when its windows close; the longest is far shorter than NOTIFIED_KEPT_MS)."""
        now, held = self.clock(), partitions.held
        outbox, raised = self.output.outbox(), []
        in_force = frozenset(s.silence_id for s in self.silences() if s.active(now))
        if in_force != self._in_force:  # a silence began or ended (or this is the first look)
            self._in_force = in_force
            for tp in held:
                raised += [self._raise(outbox, o, None, tp.partition, now) for o in self._released(tp.partition, now)]
        clock_ms, quiet = to_ms(now), set()
        if self.quiet is not None and any(self.correlator.idle(tp.partition) and
                                          self.correlator.clock_would_check(tp.partition, clock_ms) for tp in held):
            quiet = await self.quiet()
        for tp in held:
            if self.regional is not None and tp.partition not in self.enrolled:
                raised += [self._raise(outbox, o, None, tp.partition, now) for o in self._enrol(tp.partition, now)]
            states = PartitionStates(self.windows, tp.partition)
            for outcome in self.correlator.advance(tp.partition, states, now,
                                                   clock_ms if tp.partition in quiet else None):
                raised.append(self._raise(outbox, outcome, None, tp.partition, now))
        if time.monotonic() - self._swept >= SWEEP_EVERY:
            self._swept = time.monotonic()
            cutoff = to_ms(now) - NOTIFIED_KEPT_MS
            for tp in held:
                for key in [k for k, v in self.notified.of(tp.partition).items() if v["t"] < cutoff]:
                    self.notified.delete(tp.partition, key)
        await self._settle(outbox, raised, now)
