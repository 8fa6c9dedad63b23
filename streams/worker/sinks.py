"""The ClickHouse sinks (入库), in the manner of Quix Streams sinks: one batching base, each sink a
topic and a function from a record to its rows.

A sink inserts its batch with a deduplication token made of the topic, partitions and offset
ranges, and returns (so that the runner commits) only once ClickHouse has confirmed. While
ClickHouse refuses, the sink pauses its partitions, keeps the batch, and retries with backoff;
a rebalance or a stop meanwhile gives the batch up, uncommitted, to be read again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

import orjson
from aiokafka.structs import ConsumerRecord

from schemas.contracts.signals import RiskSignal
from streams import topics
from streams.intake.identity import Pseudonymiser
from streams.metrics import Metrics
from streams.runtime.deadletter import DeadLetter
from streams.runtime.runner import RETRY_MAX_SECONDS, Abandoned, Batch, Step
from streams.runtime.topics import TopicSpec
from streams.store.clickhouse import Store

log = logging.getLogger(__name__)

# A sink turns a record's value into (table, JSON line) pairs; ClickHouse maps fields to columns.
Rows = list[tuple[str, bytes]]


def event_rows(value: bytes, partition: int = -1, offset: int = -1) -> Rows:
    """A normalised event's JSON is its row as it is (no parsing on the way to the store), with
    where it was read on the events topic: the order a backtest reads it in (-1: unknown)."""
    return [("events", b'%s,"topic_partition":%d,"topic_offset":%d}' % (value.rstrip()[:-1], partition, offset))]


def late_rows(value: bytes) -> Rows:
    """A late event's note is its row as it is."""
    return [("late_events", value)]


def person_link_rows(value: bytes) -> Rows:
    """A person link is its row as it is (pseudonyms only)."""
    return [("person_links", value)]


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


def action_rows(value: bytes) -> Rows:
    return [("dispatch_actions", value)]


def rule_change_rows(value: bytes) -> Rows:
    return [("rule_changes", value)]


def silence_rows(value: bytes) -> Rows:
    """A silence as made or expired: one audit row per change."""
    return [("silences", value)]


def dead_letter_row(letter: DeadLetter, pseudonymiser: Pseudonymiser, received_at: datetime) -> dict[str, object]:
    """A dead letter's ClickHouse row: a hash and a masked preview, never identifiers in clear
    (the original bytes stay on the topic)."""
    preview = letter.raw[:512].decode("utf-8", "replace")
    return {
        "dlq_id": letter.dlq_id,
        "source_topic": letter.source_topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "reason": letter.reason,
        "field": letter.field,
        "message": pseudonymiser.mask_raw(letter.message),
        "raw_sha256": hashlib.sha256(letter.raw).hexdigest(),
        "raw_preview": pseudonymiser.mask_raw(preview),
        "received_at": received_at,
    }


def dead_letter_rows(pseudonymiser: Pseudonymiser, clock: Callable[[], datetime]) -> ToRows:
    """Dead letters as rows, read back from their headers."""
    def rows(record: ConsumerRecord) -> Rows:
        letter = DeadLetter.from_headers(record.value, dict(record.headers or []))
        return [("dead_letters", orjson.dumps(dead_letter_row(letter, pseudonymiser, clock())))]
    return rows


ToRows = Callable[[ConsumerRecord], Rows]

# The topics stored, each by its function from a record to rows.
SUNK = (topics.EVENTS, topics.DEAD_LETTERS, topics.SIGNALS, topics.CENTRE_NOTICES, topics.DRILL_NOTICES,
        topics.DISPATCH_ACTIONS, topics.LATE_EVENTS, topics.PERSON_LINKS, topics.RULE_CHANGES,
        topics.SILENCES)


def rows_of(spec: TopicSpec, pseudonymiser: Pseudonymiser, clock: Callable[[], datetime]) -> ToRows:
    """The rows of one of the ``SUNK`` topics' records."""
    if spec is topics.DEAD_LETTERS:
        return dead_letter_rows(pseudonymiser, clock)
    if spec is topics.EVENTS:  # an event reaching a county's partition is stored once, as itself
        return lambda r: [] if topics.reaching(r.headers) else event_rows(r.value, r.partition, r.offset)
    by_value = {topics.SIGNALS.name: signal_rows,
                topics.CENTRE_NOTICES.name: notice_rows, topics.DRILL_NOTICES.name: notice_rows,
                topics.DISPATCH_ACTIONS.name: action_rows, topics.LATE_EVENTS.name: late_rows,
                topics.PERSON_LINKS.name: person_link_rows, topics.RULE_CHANGES.name: rule_change_rows,
                topics.SILENCES.name: silence_rows}[spec.name]
    return lambda record: by_value(record.value)


def dedup_token(records: Iterable[ConsumerRecord]) -> str:
    """An insert deduplication token from the topic, partitions and offset ranges of a batch."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for r in records:
        lo_hi = ranges.setdefault((r.topic, r.partition), [r.offset, r.offset])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], r.offset), max(lo_hi[1], r.offset)
    return ";".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


class Sink(Step):
    """One topic into its ClickHouse table(s): insert, then return; a failed insert is retried."""

    def __init__(self, spec: TopicSpec, to_rows: ToRows, store: Store,
                 metrics: Metrics, batch_size: int, batch_seconds: float) -> None:
        self.name = f"sink-{spec.name}"
        self.consumes = (spec,)
        self.to_rows = to_rows
        self.store = store
        self.metrics = metrics
        self.max_records, self.gather_within = batch_size, batch_seconds

    async def process(self, batch: Batch) -> None:
        tables: dict[str, list[bytes]] = defaultdict(list)
        for record in batch:
            for table, row in self.to_rows(record):
                tables[table].append(row)
        token = dedup_token(batch)
        for table, rows in tables.items():
            await self._insert(batch, table, rows, f"{token}:{table}")

    async def _insert(self, batch: Batch, table: str, rows: list[bytes], token: str) -> None:
        """Insert until ClickHouse confirms; meanwhile the batch's partitions are paused."""
        delay, paused = 0.2, None
        try:
            while True:
                try:
                    with self.metrics.sink_seconds.labels(table).time():
                        await self.store.run(self.store.insert, table, rows, token)
                    break
                except Exception as exc:  # the store is down or refused: keep the batch, retry
                    if paused is None:
                        paused = batch.partitions.pause(set(batch.records))
                    self.metrics.sink_retries.labels(table).inc()
                    log.warning("insert into %s failed (%s); %s paused, retrying in %.1fs", table, exc,
                                self.consumes[0].name, delay)
                    await batch.wait(delay)
                    if batch.abandoned:
                        raise Abandoned from exc
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
        finally:
            if paused:
                batch.partitions.resume(paused)
        self.metrics.sink_rows.labels(table).inc(len(rows))
        self.metrics.sink_batch.labels(table).observe(len(rows))
