"""The validate step (校验): input records become normalised events, dead letters, or duplicates
counted and suppressed. A batch is emitted in event-time order, aligned across the input
partitions (``streams.runtime.alignment``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from streams import topics
from streams.detection.windows import to_ms
from streams.intake.validation import Accepted, Validator
from streams.metrics import Metrics
from streams.runtime.alignment import Alignment, Item
from streams.runtime.deadletter import DeadLetter, Origin
from streams.runtime.outbox import Output
from streams.runtime.runner import Batch, Partitions, Step
from streams.runtime.state import StateTable

FORGET_EVERY = 60.0  # seconds between sweeps of input ids past the duplicate horizon

# A validation method: (raw bytes, where they came from, now) → accepted events or a dead letter.
Check = Callable[[bytes, Origin, datetime], Accepted | DeadLetter]


def state_tables(app_id: str) -> tuple[dict[str, StateTable], StateTable]:
    """The step's state: 去重, the ids of accepted input within the horizon (id -> ms accepted),
    one table per input topic; and the broadcasts by "sender,identifier", so that an Update or a
    Cancel finds what it refers to."""
    seen = {spec.name: StateTable(f"seen-{spec.name}", spec, app_id) for spec in topics.INPUTS}
    return seen, StateTable("known-broadcasts", topics.EMERGENCY_BROADCASTS, app_id)


class Validate(Step):
    name = "validate"
    consumes = topics.INPUTS
    maintain_every = 0.1  # seconds: partitions held back for alignment are looked at again
    fetch_bytes = 256 << 10  # a partition's fetch: at most what alignment keeps waiting

    def __init__(self, output: Output, validator: Validator, metrics: Metrics, clock: Callable[[], datetime],
                 app_id: str, duplicate_horizon: float, alignment_seconds: float) -> None:
        self.output, self.metrics, self.clock = output, metrics, clock
        self.seen, self.known_broadcasts = state_tables(app_id)
        self.tables = (*self.seen.values(), self.known_broadcasts)
        self.horizon_ms = int(duplicate_horizon * 1000)
        self.alignment = Alignment(alignment_seconds)
        self._forgotten = time.monotonic()
        known = self.known_broadcasts
        self.checks: dict[str, Check] = {
            topics.GRID_REPORTS.name: validator.grid_report,
            topics.DEPT_ALERTS.name: validator.dept_alert,
            topics.BROADCAST_RECEIPTS.name: validator.receipt,
            topics.EMERGENCY_BROADCASTS.name:
                lambda raw, where, now: validator.broadcast(raw, where, now, known.of(where.partition).get),
        }

    async def process(self, batch: Batch) -> None:
        now = self.clock()
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
        m = self.metrics
        now_ms = to_ms(now)
        outbox = self.output.outbox()
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
                body = e.model_dump_json().encode()
                outbox.add(topics.EVENTS.name, e.partition_key, body)
                for county in e.reach():  # a wide area: again in each county's partition
                    outbox.add(topics.EVENTS.name, county.encode(), body, ((topics.REACH_HEADER, county.encode()),))
            accepted.append((r.topic, r.partition, result.uid))
        await outbox.send()
        for topic, partition, uid in accepted:  # remembered only once its events are confirmed
            self.seen[topic].put(partition, uid, now_ms)
        await self.output.flush(self.tables)
        for (metric, *labels), n in counts.items():
            metric.labels(*labels).inc(n)

    async def maintain(self, partitions: Partitions) -> None:
        if self.alignment.waiting:
            await self._release(partitions, {}, self.clock())
        if time.monotonic() - self._forgotten >= FORGET_EVERY:
            self._forgotten = time.monotonic()
            self.forget_expired(partitions.held)
            await self.output.flush(self.tables)

    def revoked(self, partitions: set[Any]) -> None:
        self.alignment.forget(partitions)

    def forget_expired(self, held: set[Any]) -> int:
        """Drop remembered input ids older than the duplicate horizon, in the partitions held."""
        cutoff = to_ms(self.clock()) - self.horizon_ms
        dropped = 0
        for tp in held:
            table = self.seen[tp.topic]
            for key in [k for k, t in table.of(tp.partition).items() if t < cutoff]:
                table.delete(tp.partition, key)
                dropped += 1
        return dropped
