"""The worker (处理流水线): validate → correlate → route, and the ClickHouse sinks.

Each step is a consumer group of its own (``groups``), run by ``streams.runner``: a batch is
fetched, processed, its outputs sent through one outbox and awaited, the state it changed written
to the changelog after them, and only then are its offsets committed. A crash at any point
replays, never loses; deterministic ids make the replay harmless. A step that waits (a sink
through a ClickHouse outage) holds back only its own topic: the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from schemas.contracts.events import BEIJING, NormalisedEvent, Source
from schemas.contracts.signals import CentreNotice, RiskSignal
from streams import topics
from streams.runtime import kafka
from streams.worker import sinks
from streams.runtime.alignment import Alignment, Item
from streams.config import Settings
from streams.detection.correlation import Correlator, Outcome, to_ms
from streams.intake.identity import Pseudonymiser
from streams.metrics import Metrics
from streams.runtime.outbox import Outbox
from streams.notify.release import broadcast_request, wants_release
from streams.notify.routing import load_policy, route
from streams.detection.ruleset import Rule, RuleError, load_rules, rule_files_signature, split_pack
from streams.runtime.runner import Batch, Partitions, Runner, Step
from streams.runtime.state import StateTable
from streams.store.clickhouse import Store
from streams.intake.validation import Accepted, DeadLetter, Origin, Validator

log = logging.getLogger(__name__)

FORGET_EVERY = 60.0  # seconds between sweeps of input ids past the duplicate horizon
RULES_POLL_EVERY = 2.0  # seconds between looks at the rule files for changes
NOTIFIED_KEPT_MS = 90 * 86_400_000  # how long a signal's last notification is remembered
JOIN_TIMEOUT = 120.0  # seconds for every step to hold its first assignment
RULE_TIMING_EVERY = 8  # of the events rules take, one in this many is timed for the metric

# The worker's steps and the topics each consumes: each step is the consumer group
# "<app id>-<step>", so that a step held up (a sink in an outage) holds back no other.
SINKS = (topics.EVENTS, topics.DEAD_LETTERS, topics.SIGNALS, topics.CENTRE_NOTICES, topics.DRILL_NOTICES,
         topics.DISPATCH_ACTIONS)
STEPS: dict[str, tuple[topics.TopicSpec, ...]] = {
    "validate": topics.INPUTS,
    "correlate": (topics.EVENTS,),
    "correlate-regional": (topics.REGIONAL_EVENTS,),
    **{f"sink-{spec.name}": (spec,) for spec in SINKS},
}


def groups(app_id: str, steps: Iterable[str] = STEPS) -> dict[str, tuple[topics.TopicSpec, ...]]:
    """Consumer group -> the topics it consumes, for the named steps (all by default)."""
    return {f"{app_id}-{name}": STEPS[name] for name in steps}


def now_beijing() -> datetime:
    return datetime.now(BEIJING)


# A validation method: (raw bytes, where they came from, now) → accepted events or a dead letter.
Check = Callable[[bytes, Origin, datetime], Accepted | DeadLetter]


class Observer(Protocol):
    """Who watches the pipeline as it works (the console of ``fengqiao up``)."""

    def on_signal(self, signal: RiskSignal, new: bool) -> None: ...

    def on_notice(self, notice: CentreNotice) -> None: ...


class Quiet:
    def on_signal(self, signal: RiskSignal, new: bool) -> None:
        pass

    def on_notice(self, notice: CentreNotice) -> None:
        pass


class Output:
    """What steps produce with: the worker's producer and the partition counts of its topics."""

    def __init__(self, producer: AIOKafkaProducer, partitions: dict[str, int]) -> None:
        self.producer, self.partitions = producer, partitions

    def outbox(self) -> Outbox:
        return Outbox(self.producer, self.partitions)

    async def flush(self, tables: Iterable[StateTable]) -> None:
        """Changed state to the changelogs, once per key: after the outputs it accounts for."""
        outbox = self.outbox()
        for table in tables:
            for partition, key, value in table.changes():
                outbox.add(table.changelog, key, value, partition=partition)
        await outbox.send()


@dataclass
class Raised:
    """A signal a batch raised or updated, with the notices it sent for it."""

    signal: RiskSignal
    new: bool
    notices: list[CentreNotice]
    cause: NormalisedEvent | None


class PartitionStates:
    """The correlator's view of one partition's window states."""

    def __init__(self, table: StateTable, partition: int) -> None:
        self.table, self.partition, self.held = table, partition, table.of(partition)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.held.get(key)

    def put(self, key: str, value: dict[str, Any], partition: int) -> None:
        self.table.put(self.partition, key, value)

    def items(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return self.held.items()


# -- validate (校验) -----------------------------------------------------------------------------
class Validate(Step):
    """Input → normalised events, dead letters, or duplicates counted and suppressed. A batch is
    emitted in event-time order, aligned across the input partitions (``streams.alignment``)."""

    name = "validate"
    consumes = topics.INPUTS
    maintain_every = 0.1  # seconds: partitions held back for alignment are looked at again
    fetch_bytes = 256 << 10  # a partition's fetch: at most what alignment keeps waiting

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline, s = pipeline, pipeline.settings
        # 去重: ids of accepted input within the horizon (id -> ms accepted), one table per topic.
        self.seen = {spec.name: StateTable(f"seen-{spec.name}", spec, s.app_id) for spec in topics.INPUTS}
        # Broadcasts by "sender,identifier", so that an Update or a Cancel finds what it refers to.
        self.known_broadcasts = StateTable("known-broadcasts", topics.EMERGENCY_BROADCASTS, s.app_id)
        self.tables = (*self.seen.values(), self.known_broadcasts)
        self.horizon_ms = int(s.duplicate_horizon * 1000)
        self.alignment = Alignment(s.input_alignment_seconds)
        self._forgotten = time.monotonic()
        v, known = pipeline.validator, self.known_broadcasts
        self.checks: dict[str, Check] = {
            topics.GRID_REPORTS.name: v.grid_report,
            topics.DEPT_ALERTS.name: v.dept_alert,
            topics.BROADCAST_RECEIPTS.name: v.receipt,
            topics.EMERGENCY_BROADCASTS.name:
                lambda raw, where, now: v.broadcast(raw, where, now, known.of(where.partition).get),
        }

    async def process(self, batch: Batch) -> None:
        now = self.pipeline.clock()
        fetched: dict[Any, list[Item]] = {}
        for tp, records in batch.records.items():
            fetched[tp] = items = []
            for r in records:
                result = self.checks[r.topic](r.value, Origin(r.topic, r.partition, r.offset), now)
                if isinstance(result, Accepted) and result.remember:  # a later record may refer to it
                    self.known_broadcasts.put(r.partition, *result.remember)
                t = min((to_ms(e.occurred_at) for e in result.events), default=None) \
                    if isinstance(result, Accepted) else None
                items.append((r, result, t))
            batch.keep(tp)
        await self._release(batch.partitions, fetched, now)

    async def _release(self, partitions: Partitions, fetched: dict[Any, list[Item]], now: datetime) -> None:
        """Emit what alignment lets go, then say how far each partition got."""
        going, done = await self.alignment.release(partitions, fetched)
        await self._emit(going, now)
        for tp, offset in done.items():
            partitions.processed(tp, offset)

    async def _emit(self, ready: list[Item], now: datetime) -> None:
        m, output = self.pipeline.metrics, self.pipeline.output
        now_ms = to_ms(now)
        outbox = output.outbox()
        accepted, in_batch = [], set()
        counts: Counter[tuple[Any, ...]] = Counter()
        for r, result, _ in ready:
            counts[(m.events_in, r.topic)] += 1
            if isinstance(result, DeadLetter):
                counts[(m.events_dead_lettered, r.topic, result.reason)] += 1
                outbox.add(topics.DEAD_LETTERS.name, r.topic.encode(), result.raw, result.headers())
                continue
            prior = self.seen[r.topic].of(r.partition).get(result.uid)
            if result.uid in in_batch or (prior is not None and prior > now_ms - self.horizon_ms):
                counts[(m.duplicates, r.topic)] += 1
                continue
            in_batch.add(result.uid)
            counts[(m.events_valid, r.topic)] += 1
            for e in result.events:
                outbox.add(topics.EVENTS.name, e.partition_key, e.model_dump_json().encode())
            accepted.append((r.topic, r.partition, result.uid))
        await outbox.send()
        for topic, partition, uid in accepted:  # remembered only once its events are confirmed
            self.seen[topic].put(partition, uid, now_ms)
        await output.flush(self.tables)
        for (metric, *labels), n in counts.items():
            metric.labels(*labels).inc(n)

    async def maintain(self, partitions: Partitions) -> None:
        if self.alignment.waiting:
            await self._release(partitions, {}, self.pipeline.clock())
        if time.monotonic() - self._forgotten >= FORGET_EVERY:
            self._forgotten = time.monotonic()
            self.forget_expired(partitions.held)
            await self.pipeline.output.flush(self.tables)

    def revoked(self, partitions: set[Any]) -> None:
        self.alignment.forget(partitions)

    def forget_expired(self, held: set[Any]) -> int:
        """Drop remembered input ids older than the duplicate horizon, in the partitions held."""
        cutoff = to_ms(self.pipeline.clock()) - self.horizon_ms
        dropped = 0
        for tp in held:
            table = self.seen[tp.topic]
            for key in [k for k, t in table.of(tp.partition).items() if t < cutoff]:
                table.delete(tp.partition, key)
                dropped += 1
        return dropped


# -- correlate and route (研判、分级推送) ------------------------------------------------------------
class Correlate(Step):
    """Each event enters the windows of the rules it matches; a crossing raises a signal, routed to
    the centres it concerns. The county scope also repartitions each event to the city-wide groups
    it belongs to; the regional scope (city-wide rules) is fed only the group an event came keyed by."""

    maintain_every = 1.0  # seconds: absences fall due on watermarks that idle sources move on

    def __init__(self, pipeline: Pipeline, regional: bool) -> None:
        self.pipeline, self.regional, app_id = pipeline, regional, pipeline.settings.app_id
        source = topics.REGIONAL_EVENTS if regional else topics.EVENTS
        self.name = "correlate-regional" if regional else "correlate"
        self.consumes = (source,)
        self.correlator = pipeline.regional if regional else pipeline.correlator
        # 关联窗口: window state per (rule, group); 通知节流: when each signal last notified its
        # centres, and the deadlines it gave them.
        suffix = "-regional" if regional else ""
        self.windows = StateTable(f"correlation-windows{suffix}", source, app_id)
        self.notified = StateTable(f"notified{suffix}", source, app_id)
        self.tables = (self.windows, self.notified)
        self.timer = pipeline.metrics.rule_seconds.labels("regional" if regional else "county")
        self._timed = 0
        self._swept = 0.0

    async def process(self, batch: Batch) -> None:
        p = self.pipeline
        outbox, raised = p.output.outbox(), []
        now = p.clock()
        for r in batch:
            doc = orjson.loads(r.value)
            source, states = Source(doc["source"]), PartitionStates(self.windows, r.partition)
            wider = not self.regional and p.regional.concerns(source, doc["category"])
            event = None
            if wider or self.correlator.concerns(source, doc["category"]):
                event = NormalisedEvent.model_validate(doc)  # from the parsed JSON: faster than from bytes
                self._timed += 1
                started = time.perf_counter() if self._timed % RULE_TIMING_EVERY == 0 else None
                outcomes = self.correlator.process(event, r.partition, states, now,
                                                   only=r.key.decode() if self.regional else None)
                if started is not None:
                    self.timer.observe(time.perf_counter() - started)
            else:  # most events: no rule takes them, they only move the watermark on
                occurred = to_ms(datetime.fromisoformat(doc["occurred_at"]))
                outcomes = self.correlator.pass_by(r.partition, source, occurred, states, now)
            raised += [self._raise(outbox, outcome, event, r.partition, now) for outcome in outcomes]
            if wider and event is not None:
                for key in p.regional.regroup_keys(event):  # 重分区: once per city-wide group
                    outbox.add(topics.REGIONAL_EVENTS.name, key.encode(), r.value)
        await self._settle(outbox, raised, now)

    def _raise(self, outbox: Outbox, outcome: Outcome, cause: NormalisedEvent | None, partition: int,
               now: datetime) -> Raised:
        """A raised or updated signal, its notices (``cause`` is the event that completed it, if
        an event did: a due absence has none) and, for a red one, a draft broadcast."""
        p = self.pipeline
        signal, escalated = outcome.signal, outcome.escalated
        assert signal is not None
        outbox.add(topics.SIGNALS.name, signal.signal_id.encode(), signal.model_dump_json().encode())
        raised = Raised(signal, outcome.previous_level is None, [], cause)
        last = self.notified.of(partition).get(signal.signal_id)
        update_of = None
        if not escalated:
            # More evidence for a signal the centres have: its notices are updated in place, at
            # most once per repeat interval, and page no one (Alertmanager's grouping).
            if last is None or to_ms(now) - last["t"] < p.settings.notice_repeat_interval * 1000:
                return raised
            update_of = (datetime.fromisoformat(last["ack"]), datetime.fromisoformat(last["close"]))
        raised.notices = route(signal, now, p.policy, update_of)
        self.notified.put(partition, signal.signal_id, {"t": to_ms(now), "ack": raised.notices[0].ack_due.isoformat(),
                                                        "close": raised.notices[0].close_due.isoformat()})
        for notice in raised.notices:
            # Drills go to their own channel: no live centre is paged, streamed or supervised.
            spec = topics.DRILL_NOTICES if notice.drill else topics.CENTRE_NOTICES
            outbox.add(spec.name, notice.centre_code.encode(), notice.model_dump_json().encode())
        if wants_release(signal) and not update_of:
            request = broadcast_request(signal, now)
            outbox.add(topics.BROADCAST_REQUESTS.name, signal.signal_id.encode(),
                       request.model_dump_json(by_alias=True, exclude_none=True).encode())
        return raised

    async def _settle(self, outbox: Outbox, raised: list[Raised], now: datetime) -> None:
        """In this order: the outputs on the broker, then counted and shown, then the state that
        accounts for them on its changelog."""
        await outbox.send()
        self._announce(raised, now)
        await self.pipeline.output.flush(self.tables)

    def _announce(self, raised: list[Raised], now: datetime) -> None:
        """Once the broker has them: signals and notices counted, and shown to whoever watches."""
        m, observer = self.pipeline.metrics, self.pipeline.observer
        for r in raised:
            m.signals.labels(r.signal.rule_id, r.signal.level.value, "new" if r.new else "update").inc()
            observer.on_signal(r.signal, r.new)
            for notice in r.notices:
                channel = topics.DRILL_NOTICES if notice.drill else topics.CENTRE_NOTICES
                m.notices.labels(channel.name, notice.centre_level.value).inc()
                if r.cause is not None:
                    m.notice_latency.observe(max(0.0, (now - r.cause.ingested_at).total_seconds()))
                    m.notice_latency_event_time.observe(max(0.0, (now - r.cause.occurred_at).total_seconds()))
                observer.on_notice(notice)

    async def maintain(self, partitions: Partitions) -> None:
        """Absences that fell due while no event came; and, hourly, notifications of signals
        long closed forgotten (a signal stops updating when its windows close; the longest is
        far shorter than NOTIFIED_KEPT_MS)."""
        p, now, held = self.pipeline, self.pipeline.clock(), partitions.held
        outbox, raised = p.output.outbox(), []
        for tp in held:
            for outcome in self.correlator.advance(tp.partition, PartitionStates(self.windows, tp.partition), now):
                raised.append(self._raise(outbox, outcome, None, tp.partition, now))
        if time.monotonic() - self._swept >= FORGET_EVERY * 60:
            self._swept = time.monotonic()
            cutoff = to_ms(now) - NOTIFIED_KEPT_MS
            for tp in held:
                for key in [k for k, v in self.notified.of(tp.partition).items() if v["t"] < cutoff]:
                    self.notified.delete(tp.partition, key)
        await self._settle(outbox, raised, now)


class Pipeline:
    """One worker: every step, wired to the topics and the store."""

    def __init__(
        self,
        settings: Settings,
        bootstrap_servers: str,
        store: Store,
        rules: list[Rule],
        metrics: Metrics,
        observer: Observer | None = None,
        clock: Callable[[], datetime] = now_beijing,
    ) -> None:
        self.settings = settings
        self.bootstrap_servers = bootstrap_servers
        self.store = store
        self.metrics = metrics
        self.observer = observer or Quiet()
        self.clock = clock
        self.validator = Validator(Pseudonymiser(settings.pseudonym_key.get_secret_value().encode()))
        local, regional = split_pack(rules)
        self.correlator = Correlator(local, source_idle=settings.source_idle_seconds)
        # rules grouped coarser than a county, after a repartition
        self.regional = Correlator(regional, source_idle=settings.source_idle_seconds)
        self.policy = load_policy(settings.routing_file)
        self.producer = kafka.producer(bootstrap_servers, acks="all", max_batch_size=1 << 18,
                                       max_request_size=4 << 20, request_timeout_ms=30_000)
        self.output = Output(self.producer, {})
        self.validate = Validate(self)
        pseudonymiser, c = self.validator.pseudonymiser, self.clock
        rows: dict[topics.TopicSpec, Callable[[Any], sinks.Rows]] = {
            topics.EVENTS: lambda r: sinks.event_rows(r.value),
            topics.DEAD_LETTERS: sinks.dead_letter_rows(pseudonymiser, c),
            topics.SIGNALS: lambda r: sinks.signal_rows(r.value),
            topics.CENTRE_NOTICES: lambda r: sinks.notice_rows(r.value),
            topics.DRILL_NOTICES: lambda r: sinks.notice_rows(r.value),
            topics.DISPATCH_ACTIONS: lambda r: sinks.action_rows(r.value),
        }
        self.steps: list[Step] = [
            self.validate, Correlate(self, regional=False), Correlate(self, regional=True),
            *(sinks.Sink(spec, rows[spec], store, metrics, settings.sink_batch_size, settings.sink_batch_seconds)
              for spec in SINKS),
        ]
        assert [s.name for s in self.steps] == list(STEPS), "the steps and their groups are declared in STEPS"
        self.runners = [Runner(step, bootstrap_servers, group, settings, metrics)
                        for step, group in zip(self.steps, groups(settings.app_id))]
        self._rules_seen = rule_files_signature(settings.rules_dir)
        self._watch: asyncio.Task | None = None
        self.running = False

    @property
    def alive(self) -> bool:
        """False once a step's loop has ended while the worker was not stopping."""
        return all(r.alive for r in self.runners)

    def runner(self, step: str) -> Runner:
        return next(r for r in self.runners if r.step.name == step)

    @property
    def tables(self) -> list[StateTable]:
        return [t for step in self.steps for t in step.tables]

    async def start(self) -> None:
        changelogs = tuple(t.spec for t in self.tables)
        await topics.ensure_topics(self.bootstrap_servers, changelogs, self.settings.kafka_replication_factor)
        await self.producer.start()
        for spec in (*topics.ALL, *changelogs):
            found = len(await self.producer.partitions_for(spec.name))
            if found != spec.partitions:  # keys and state are placed by partition: they must agree
                raise RuntimeError(f"topic {spec.name} has {found} partitions, fengqiao expects {spec.partitions} "
                                   "(FENGQIAO_PARTITION_SCALE must be the same in every process)")
            self.output.partitions[spec.name] = found
        for runner in self.runners:
            await runner.start()
        async with asyncio.timeout(JOIN_TIMEOUT):
            for runner in self.runners:
                await runner.joined.wait()
        self._watch = asyncio.create_task(self._watch_rules(), name="watch-rules")
        self.running = True

    async def stop(self) -> None:
        self.running = False
        if self._watch:
            self._watch.cancel()
        await asyncio.gather(*(r.stop() for r in self.runners), return_exceptions=True)
        await kafka.stop(self.producer)

    def reload_rules(self) -> bool:
        """Load the rule pack again (SIGHUP, or a rule file changed). A pack that does not load
        is refused with its file, line and reason, and the running rules stay."""
        try:
            rules = load_rules(self.settings.rules_dir)
        except (RuleError, OSError) as exc:
            log.error("rule pack not reloaded; the running rules stay: %s", exc)
            self.metrics.rule_reloads.labels("refused").inc()
            return False
        local, regional = split_pack(rules)
        changes = self.correlator.replace_rules(local)
        for kind, ids in self.regional.replace_rules(regional).items():
            changes[kind] = sorted(changes[kind] + ids)
        log.warning("rule pack reloaded: %s", {k: v for k, v in changes.items() if v and k != "unchanged"} or "no change")
        self.metrics.rule_reloads.labels("done").inc()
        return True

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(RULES_POLL_EVERY)
            seen = rule_files_signature(self.settings.rules_dir)
            if seen != self._rules_seen:
                self._rules_seen = seen
                self.reload_rules()

    async def forget_expired(self) -> int:
        """Sweep remembered input ids past the duplicate horizon now, as the validate step does
        every minute; returns how many were dropped."""
        runner = self.runner(self.validate.name)
        async with runner.lock:
            dropped = self.validate.forget_expired(set(runner.ready))
            await self.output.flush(self.validate.tables)
        return dropped
