"""The ClickHouse sinks (入库), in the manner of Quix Streams sinks: one batching base, each sink a
topic and a function from a record to its rows.

A sink inserts its batch with a deduplication token made of the topic, partitions and offset
ranges, and returns (so that the runner commits) only once ClickHouse has confirmed. While
ClickHouse refuses, the sink pauses its partitions, keeps the batch, and retries with backoff;
a rebalance or a stop meanwhile gives the batch up, uncommitted, to be read again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

import orjson
from aiokafka.structs import ConsumerRecord

from schemas.contracts.signals import RiskSignal
from streams.intake.identity import Pseudonymiser
from streams.metrics import Metrics
from streams.runtime.runner import RETRY_MAX_SECONDS, Abandoned, Batch, Step
from streams.store.clickhouse import Store
from streams.topics import TopicSpec
from streams.intake.validation import DeadLetter

log = logging.getLogger(__name__)

# A sink turns a record's value into (table, JSON line) pairs; ClickHouse maps fields to columns.
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


def action_rows(value: bytes) -> Rows:
    return [("dispatch_actions", value)]


def dead_letter_rows(pseudonymiser: Pseudonymiser, clock: Callable[[], datetime]) -> Callable[[ConsumerRecord], Rows]:
    """Dead letters as rows: a hash and a masked preview of the original bytes, never in clear."""
    def rows(record: ConsumerRecord) -> Rows:
        letter = DeadLetter.from_headers(record.value, dict(record.headers or []))
        return [("dead_letters", orjson.dumps(letter.row(pseudonymiser, clock())))]
    return rows


def dedup_token(records: Iterable[ConsumerRecord]) -> str:
    """An insert deduplication token from the topic, partitions and offset ranges of a batch."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for r in records:
        lo_hi = ranges.setdefault((r.topic, r.partition), [r.offset, r.offset])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], r.offset), max(lo_hi[1], r.offset)
    return ";".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


class Sink(Step):
    """One topic into its ClickHouse table(s): insert, then return; a failed insert is retried."""

    def __init__(self, spec: TopicSpec, to_rows: Callable[[ConsumerRecord], Rows], store: Store,
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
