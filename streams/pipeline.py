"""The Faust app and its agents: validate → correlate → route, and the ClickHouse sinks.

A pipeline of small named steps in the manner of Arroyo consumers. Offsets are acknowledged
only after the step's output is confirmed: a batch of produced messages is awaited, a sink's
insert has returned. Faust flushes its producer before it commits, so a crash at any point
replays, never loses; deterministic ids make the replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

import faust
import orjson

from schemas.events import BEIJING, NormalisedEvent
from schemas.signals import CentreNotice, RiskSignal
from streams import faustfix, kafka, topics
from streams.config import Settings
from streams.correlation import Correlator, Outcome, to_ms
from streams.identity import Pseudonymiser
from streams.metrics import Metrics
from streams.release import broadcast_request, wants_release
from streams.routing import load_policy, route
from streams.ruleset import Rule, RuleError, load_rules, rule_files_signature, split_pack
from streams.store import Store
from streams.validation import Accepted, DeadLetter, Origin, Validator

log = logging.getLogger(__name__)

# The validate and correlate steps take up to STEP_BATCH messages, or what came in STEP_WITHIN s.
STEP_BATCH = 500
STEP_WITHIN = 0.05
RETRY_MAX_SECONDS = 10.0
FORGET_EVERY = 60.0  # seconds between sweeps of input ids past the duplicate horizon
RULES_POLL_EVERY = 2.0  # seconds between looks at the rule files for changes
NOTIFIED_KEPT_MS = 90 * 86_400_000  # how long a signal's last notification is remembered


faustfix.apply()


def now_beijing() -> datetime:
    return datetime.now(BEIJING)


# A validation method: (raw bytes, where they came from, now) → accepted events or a dead letter.
Check = Callable[[bytes, Origin, datetime], Accepted | DeadLetter]


async def put(table: Any, partition: int, key: str, value: dict[str, Any]) -> None:
    """Set a table key from a batch step: the change goes to the changelog partition of the
    input message it came from, as Faust does for a key set inside stream iteration."""
    table.data[key] = value
    await send_changelog(table, partition, key, value)


async def send_changelog(table: Any, partition: int, key: str, value: dict[str, Any]) -> None:
    """A table change to its changelog, in Faust's own encoding, straight through the transport
    producer. Faust's ``send_changelog`` queues it in a buffer of 100 records, and once that is
    full, stops all consumption while it sends them one at a time ("producer buffer full"): a
    validate batch of 500 did that every time. Faust flushes the producer before it commits."""
    topic = table.changelog_topic
    k, _ = topic.prepare_key(key, table.key_serializer)
    v, _ = topic.prepare_value(value, table.value_serializer)
    await table.app.producer.send(topic.get_topic_name(), k, v, partition, None, None)


class TableStates:
    """Window states in the worker's Faust table, written to the changelog partition of the
    events they came from: at once in the table, to the changelog once per key and batch
    (``flush``), since only a key's last value is recovered."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.changed: dict[str, int] = {}  # key -> partition, since the last flush

    def get(self, key: str) -> dict[str, Any] | None:
        return self.table.data.get(key)

    def put(self, key: str, value: dict[str, Any], partition: int) -> None:
        self.table.data[key] = value
        self.changed[key] = partition

    def items(self) -> Any:
        return self.table.data.items()

    async def flush(self) -> None:
        for key, partition in self.changed.items():
            await send_changelog(self.table, partition, key, self.table.data[key])
        self.changed.clear()


def forget(table: Any, partition: int, key: str) -> None:
    """Drop a table key, with a tombstone in its changelog: from the hourly clean-up, outside any
    batch, so through Faust's own buffered path."""
    table.data.pop(key, None)
    table.send_changelog(partition, key, None, value_serializer="raw")


class Observer(Protocol):
    """Who watches the pipeline as it works (the console of ``fengqiao up``)."""

    def on_signal(self, signal: RiskSignal, new: bool) -> None: ...

    def on_notice(self, notice: CentreNotice) -> None: ...


class Quiet:
    def on_signal(self, signal: RiskSignal, new: bool) -> None:
        pass

    def on_notice(self, notice: CentreNotice) -> None:
        pass


def dedup_token(events: Iterable[Any]) -> str:
    """An insert deduplication token from the topic, partitions and offset ranges of a batch."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for event in events:
        m = event.message
        lo_hi = ranges.setdefault((m.topic, m.partition), [m.offset, m.offset])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], m.offset), max(lo_hi[1], m.offset)
    return ";".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


# A sink turns a message into (table, JSON line) pairs; ClickHouse maps the fields to columns.
Rows = list[tuple[str, bytes]]


def event_rows(value: bytes) -> Rows:
    """A normalised event's JSON is its row as it is: no parsing on the way to the store."""
    return [("events", value)]


def signal_rows(value: bytes) -> Rows:
    signal = RiskSignal.model_validate_json(value)
    row = signal.model_dump(mode="json", exclude={"schema_version", "evidence"})
    row["event_count"] = len(signal.evidence)
    evidence = [
        ("signal_evidence", orjson.dumps({"signal_id": signal.signal_id, "region_code": signal.region_code,
                                          **e.model_dump(mode="json")}))
        for e in signal.evidence
    ]
    return [("signals", orjson.dumps(row)), *evidence]


def notice_rows(value: bytes) -> Rows:
    return [("notices", value)]


class Pipeline:
    """One Faust worker: the agents of every step, wired to the topics and the store."""

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
        session = settings.session_timeout
        self.app = faust.App(
            settings.app_id,
            broker=";".join(f"kafka://{s}" for s in bootstrap_servers.split(",")),
            store="memory://",
            autodiscover=False,
            web_enabled=False,
            topic_replication_factor=settings.kafka_replication_factor,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_linger=settings.kafka_producer_linger_ms / 1000,
            producer_max_batch_size=1 << 18,  # 256 KiB a partition's batch, not 16: fewer, fuller requests
            broker_session_timeout=session,
            broker_heartbeat_interval=min(3.0, session / 4),
            broker_commit_interval=1.0,
            # On a rebalance or a stop, do not wait for messages still in a sink's batch: they are
            # unacknowledged, so they are read again after it, and every sink is idempotent.
            # Waiting can hang for ever once Faust has cleared the agents' queues (faust#402).
            stream_wait_empty=False,
            **kafka.faust_options(settings),
        )
        self.app.fengqiao_fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms  # read by faustfix
        t = {spec: self._topic(spec) for spec in topics.ALL}
        # 关联窗口: window state per (rule, group), co-partitioned with the events topic, and for
        # city-wide rules with the regional events topic.
        self.windows = self._table("correlation-windows", topics.EVENTS)
        self.regional_windows = self._table("correlation-windows-regional", topics.REGIONAL_EVENTS)
        # 去重: ids of accepted input within the horizon, one table per input topic.
        self.seen = {spec: self._table(f"seen-{spec.name}", spec) for spec in topics.INPUTS}
        # Broadcasts by "sender,identifier", so that an Update or a Cancel finds what it refers to.
        self.known_broadcasts = self._table("known-broadcasts", topics.EMERGENCY_BROADCASTS)
        # 通知节流: when each signal last notified its centres, and the deadlines it gave them.
        self.notified = self._table("notified", topics.EVENTS)
        self.regional_notified = self._table("notified-regional", topics.REGIONAL_EVENTS)
        v = self.validator
        checks: dict[topics.TopicSpec, Check] = {
            topics.GRID_REPORTS: v.grid_report,
            topics.DEPT_ALERTS: v.dept_alert,
            topics.BROADCAST_RECEIPTS: v.receipt,
            topics.EMERGENCY_BROADCASTS: lambda raw, where, now: v.broadcast(raw, where, now, self.known_broadcasts.get),
        }
        agent = self.app.agent
        for spec, check in checks.items():
            agent(t[spec], name=f"validate-{spec.name}")(self._validate(spec, check))
        agent(t[topics.EVENTS], name="correlate")(self.correlate)
        agent(t[topics.REGIONAL_EVENTS], name="correlate-regional")(self.correlate_regional)
        self.app.timer(FORGET_EVERY, name="forget-expired-ids")(self._forget_expired)
        self._rules_seen = rule_files_signature(settings.rules_dir)
        self.app.timer(RULES_POLL_EVERY, name="watch-rules")(self._watch_rules)
        sinks: dict[topics.TopicSpec, tuple[str, Callable[[Any], Rows]]] = {
            topics.EVENTS: ("sink-events", lambda e: event_rows(e.value)),
            topics.DEAD_LETTERS: ("sink-dead-letters", self._dead_letter_rows),
            topics.SIGNALS: ("sink-signals", lambda e: signal_rows(e.value)),
            topics.CENTRE_NOTICES: ("sink-notices", lambda e: notice_rows(e.value)),
            topics.DRILL_NOTICES: ("sink-drill-notices", lambda e: notice_rows(e.value)),
            topics.DISPATCH_ACTIONS: ("sink-actions", lambda e: [("dispatch_actions", e.value)]),
        }
        for spec, (name, to_rows) in sinks.items():
            agent(t[spec], name=name)(self._sink(spec, to_rows))

    def _topic(self, spec: topics.TopicSpec) -> Any:
        return self.app.topic(spec.name, partitions=spec.partitions, key_serializer="raw",
                              value_serializer="raw")

    def _table(self, name: str, source: topics.TopicSpec) -> Any:
        # No key_type/value_type: keys and values go through the changelog as plain JSON. With
        # value_type=dict, Faust's recovery calls dict.from_data and fails, and the state would
        # not survive a restart (the restart test caught it).
        return self.app.Table(name, partitions=source.partitions)

    async def start(self) -> None:
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()

    # -- validate (校验) ---------------------------------------------------------------------
    def _validate(self, spec: topics.TopicSpec, check: Check) -> Callable[[Any], Any]:
        """Input → normalised events, dead letters, or duplicates counted and suppressed."""
        seen = self.seen[spec]
        horizon_ms = int(self.settings.duplicate_horizon * 1000)

        async def validate(stream: Any) -> None:
            async for batch in stream.noack_take(STEP_BATCH, within=STEP_WITHIN):
                now = self.clock()
                now_ms = to_ms(now)
                pending, accepted, in_batch = [], [], set()
                for event in batch:
                    m = event.message
                    self.metrics.events_in.labels(spec.name).inc()
                    result = check(m.value, Origin(m.topic, m.partition, m.offset), now)
                    if isinstance(result, DeadLetter):
                        self.metrics.events_dead_lettered.labels(spec.name, result.reason).inc()
                        headers = result.headers()
                        pending.append(await self._send(topics.DEAD_LETTERS, spec.name.encode(), result.raw, headers))
                        continue
                    prior = seen.get(result.uid)
                    if result.uid in in_batch or (prior and prior["t"] > now_ms - horizon_ms):
                        self.metrics.duplicates.labels(spec.name).inc()
                        continue
                    in_batch.add(result.uid)
                    if result.remember:
                        await put(self.known_broadcasts, m.partition, *result.remember)
                    self.metrics.events_valid.labels(spec.name).inc()
                    for e in result.events:
                        pending.append(await self._send(topics.EVENTS, e.partition_key, e.model_dump_json().encode()))
                    accepted.append((m.partition, result.uid))
                await asyncio.gather(*pending)
                for partition, uid in accepted:  # remembered only once its events are confirmed
                    await put(seen, partition, uid, {"t": now_ms, "p": partition})
                for event in batch:
                    await stream.ack(event)

        return validate

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
        seen = rule_files_signature(self.settings.rules_dir)
        if seen != self._rules_seen:
            self._rules_seen = seen
            self.reload_rules()

    async def _forget_expired(self) -> None:
        self.forget_expired()

    def forget_expired(self) -> int:
        """Drop remembered input ids older than the duplicate horizon, in partitions held here."""
        cutoff = to_ms(self.clock()) - int(self.settings.duplicate_horizon * 1000)
        held = {(tp.topic, tp.partition) for tp in self.app.consumer.assignment()}
        dropped = 0
        for spec, table in self.seen.items():
            dropped += self._forget_older(table, spec, cutoff, held)
        # A signal stops updating when its windows close; the longest is far shorter than this.
        for table, spec in ((self.notified, topics.EVENTS), (self.regional_notified, topics.REGIONAL_EVENTS)):
            self._forget_older(table, spec, to_ms(self.clock()) - NOTIFIED_KEPT_MS, held)
        return dropped

    @staticmethod
    def _forget_older(table: Any, spec: topics.TopicSpec, cutoff: int, held: set[tuple[str, int]]) -> int:
        old = [(k, v["p"]) for k, v in table.data.items() if v["t"] < cutoff and (spec.name, v["p"]) in held]
        for key, partition in old:
            forget(table, partition, key)
        return len(old)

    async def _send(self, spec: topics.TopicSpec, key: bytes, value: bytes, headers: Any = None) -> Any:
        """Produce through Faust's transport producer: the key's partition, none of a Topic's
        per-message bookkeeping. Returns the delivery future; Faust flushes before it commits."""
        return await self.app.producer.send(spec.name, key, value, None, None, headers)

    # -- correlate and route (研判、分级推送) --------------------------------------------------
    async def correlate(self, stream: Any) -> None:
        """Each event enters the windows of the rules it matches; a crossing raises a signal."""
        await self._correlate(stream, self.correlator, self.windows, self.notified, "county")

    async def correlate_regional(self, stream: Any) -> None:
        """City-wide rules: each event comes keyed by one of its groups, and only that group is fed."""
        await self._correlate(stream, self.regional, self.regional_windows, self.regional_notified, "regional")

    async def _correlate(self, stream: Any, correlator: Correlator, windows: Any, notified: Any, scope: str) -> None:
        """One loop for both scopes, in batches; the county scope also repartitions each event to
        the city-wide groups it belongs to. Acknowledged only after everything is produced."""
        regional, timer = scope == "regional", self.metrics.rule_seconds.labels(scope)
        async for batch in stream.noack_take(STEP_BATCH, within=STEP_WITHIN):
            states = TableStates(windows)
            for message in batch:
                event = NormalisedEvent.model_validate_json(message.value)
                partition = message.message.partition
                with timer.time():
                    outcomes = correlator.process(event, partition, states, self.clock(),
                                                  only=message.key.decode() if regional else None)
                for outcome in outcomes:
                    await self._raise(outcome, event, notified, partition)
                if not regional:
                    for key in self.regional.regroup_keys(event):  # 重分区: once per city-wide group
                        await self._send(topics.REGIONAL_EVENTS, key.encode(), message.value)
            await self._settle(stream, batch, states)

    @staticmethod
    async def _settle(stream: Any, batch: list[Any], states: TableStates) -> None:
        """A batch's window changes to the changelog, then its messages acknowledged: Faust
        flushes what they produced before it commits their offsets."""
        await states.flush()
        for message in batch:
            await stream.ack(message)

    async def _raise(self, outcome: Outcome, cause: NormalisedEvent, notified: Any, partition: int) -> None:
        signal, new, escalated = outcome.signal, outcome.previous_level is None, outcome.escalated
        self.metrics.signals.labels(signal.rule_id, signal.level.value, "new" if new else "update").inc()
        await self._send(topics.SIGNALS, signal.signal_id.encode(), signal.model_dump_json().encode())
        self.observer.on_signal(signal, new)
        now = self.clock()
        last = notified.data.get(signal.signal_id)
        update_of = None
        if not escalated:
            # More evidence for a signal the centres have: its notices are updated in place, at
            # most once per repeat interval, and page no one (Alertmanager's grouping).
            if last is None or to_ms(now) - last["t"] < self.settings.notice_repeat_interval * 1000:
                return
            update_of = (datetime.fromisoformat(last["ack"]), datetime.fromisoformat(last["close"]))
        notices = route(signal, now, self.policy, update_of)
        await put(notified, partition, signal.signal_id, {
            "t": to_ms(now), "p": partition,
            "ack": notices[0].ack_due.isoformat(), "close": notices[0].close_due.isoformat()})
        for notice in notices:
            # Drills go to their own channel: no live centre is paged, streamed or supervised.
            spec = topics.DRILL_NOTICES if notice.drill else topics.CENTRE_NOTICES
            await self._send(spec, notice.centre_code.encode(), notice.model_dump_json().encode())
            self.metrics.notices.labels(spec.name, notice.centre_level.value).inc()
            self.metrics.notice_latency.observe(max(0.0, (now - cause.ingested_at).total_seconds()))
            self.metrics.notice_latency_event_time.observe(max(0.0, (now - cause.occurred_at).total_seconds()))
            self.observer.on_notice(notice)
        if wants_release(signal) and not update_of:
            request = broadcast_request(signal, now)
            await self._send(topics.BROADCAST_REQUESTS, signal.signal_id.encode(),
                             request.model_dump_json(by_alias=True, exclude_none=True).encode())

    # -- sinks (入库) --------------------------------------------------------------------------
    def _dead_letter_rows(self, event: Any) -> Rows:
        letter = DeadLetter.from_headers(event.value, dict(event.message.headers or []))
        return [("dead_letters", orjson.dumps(letter.row(self.validator.pseudonymiser, self.clock())))]

    def _sink(self, spec: topics.TopicSpec, to_rows: Callable[[Any], Rows]) -> Callable[[Any], Any]:
        """A batching ClickHouse sink: insert, then acknowledge; a failed insert is retried, never acked."""
        size, within = self.settings.sink_batch_size, self.settings.sink_batch_seconds

        async def sink(stream: Any) -> None:
            async for batch in stream.noack_take(size, within=within):
                tables: dict[str, list[bytes]] = defaultdict(list)
                for event in batch:
                    for table, row in to_rows(event):
                        tables[table].append(row)
                token = dedup_token(batch)
                for table, rows in tables.items():
                    if not await self._insert(spec, table, rows, f"{token}:{table}"):
                        return  # stopping with the batch unacknowledged: it is read again
                for event in batch:
                    await stream.ack(event)

        return sink

    async def _insert(self, spec: topics.TopicSpec, table: str, rows: list[bytes], token: str) -> bool:
        """Insert until ClickHouse confirms; while it fails, ``spec``'s partitions are paused."""
        delay, paused = 0.2, set()
        try:
            while not self.app.should_stop:
                try:
                    with self.metrics.sink_seconds.labels(table).time():
                        await self.store.run(self.store.insert, table, rows, token)
                except Exception as exc:  # the store is down or refused: keep the batch, retry
                    if not paused:
                        paused = {tp for tp in self.app.consumer.assignment() if tp.topic == spec.name}
                        self.app.consumer.pause_partitions(paused)
                    self.metrics.sink_retries.labels(table).inc()
                    log.warning("insert into %s failed (%s); %s paused, retrying in %.1fs", table, exc,
                                spec.name, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    continue
                self.metrics.sink_rows.labels(table).inc(len(rows))
                self.metrics.sink_batch.labels(table).observe(len(rows))
                return True
            return False
        finally:
            if paused and not self.app.should_stop:
                self.app.consumer.resume_partitions(paused)
