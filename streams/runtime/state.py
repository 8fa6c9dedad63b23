"""A step's state (状态表): one dict per partition of the topic it consumes, kept in memory, every
change also written to a changelog topic partition of the same number.

A partition's state is rebuilt from its changelog when the partition is assigned, before any of
its records is processed, and dropped when it is revoked. Changes reach the changelog only when
the step flushes them, which it does after the outputs that caused them are delivered: whatever
the changelog holds, its outputs exist. Replaying from the last committed offset over the
recovered state therefore never loses an output; what it repeats, deterministic ids absorb.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.runtime import kafka
from streams.runtime.kafka import Cluster
from streams.runtime.topics import TopicSpec, end_offsets

log = logging.getLogger(__name__)


class StateRefused(Exception):
    """A changelog holds state this process does not read (written by a newer version)."""


class StateTable:
    """Partitioned state of one step, co-partitioned with ``source`` (the topic whose records
    change it). Values are anything orjson writes; a deleted key is a tombstone in the changelog.
    ``check`` looks at each value recovered and raises ValueError for one it cannot read: the
    step then stops rather than work on state it misreads."""

    def __init__(self, name: str, source: TopicSpec, app_id: str,
                 check: Callable[[Any], object] | None = None) -> None:
        self.name = name
        self.source = source
        self.check = check
        self.changelog = f"{app_id}-{name}-changelog"
        self.partitions: dict[int, dict[str, Any]] = {}
        self._changed: dict[int, set[str]] = {}

    @property
    def spec(self) -> TopicSpec:
        """The changelog topic: as many partitions as its source, compacted on a real Kafka."""
        return TopicSpec(self.changelog, self.source.base_partitions, "state key",
                         f"changelog of the state table {self.name}", compacted=True)

    def of(self, partition: int) -> dict[str, Any]:
        """The state of one partition (held here: assigned and recovered)."""
        return self.partitions[partition]

    def put(self, partition: int, key: str, value: Any) -> None:
        self.partitions[partition][key] = value
        self._changed.setdefault(partition, set()).add(key)

    def delete(self, partition: int, key: str) -> None:
        if self.partitions[partition].pop(key, None) is not None:
            self._changed.setdefault(partition, set()).add(key)

    def changes(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(partition, key, value or None) of every key changed since the last call: its last
        value only, since only that is recovered."""
        changed, self._changed = self._changed, {}
        for partition, keys in changed.items():
            held = self.partitions.get(partition)
            if held is None:  # revoked meanwhile: its new owner recovers without these
                continue
            for key in keys:
                value = held.get(key)
                yield partition, key.encode(), None if value is None else orjson.dumps(value)

    def discard_changes(self) -> None:
        """Forget unflushed changes (the batch that made them is abandoned and read again)."""
        self._changed = {}

    def drop(self, partitions: set[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)
            self._changed.pop(p, None)

    def apply(self, partition: int, key: bytes, value: bytes | None) -> None:
        held = self.partitions.setdefault(partition, {})
        if value is None:
            held.pop(key.decode(), None)
        else:
            doc = orjson.loads(value)
            if self.check is not None:
                try:
                    self.check(doc)
                except ValueError as exc:
                    raise StateRefused(f"{self.changelog} partition {partition}, key {key.decode()!r}: {exc}") from None
            held[key.decode()] = doc


async def recover(cluster: Cluster, tables: list[tuple[StateTable, int]]) -> int:
    """Rebuild each (table, partition) from its changelog, up to the end it had when asked (its
    owner is this process, so nothing is added meanwhile); returns the records read."""
    for table, p in tables:
        table.partitions[p] = {}
        table._changed.pop(p, None)
    by_tp = {TopicPartition(t.changelog, p): (t, p) for t, p in tables}
    if not by_tp:
        return 0
    consumer = cluster.consumer(enable_auto_commit=False)
    await consumer.start()
    read = 0
    try:
        ends = await end_offsets(consumer, list(by_tp), cluster.tansu)
        pending = {tp for tp, end in ends.items() if end > 0}
        if pending:
            consumer.assign(list(pending))
            await consumer.seek_to_beginning(*pending)
        while pending:
            for tp, records in (await consumer.getmany(*pending, timeout_ms=500, max_records=20_000)).items():
                table, p = by_tp[tp]
                for r in records:
                    if r.offset < ends[tp]:
                        table.apply(p, r.key, r.value)
                        read += 1
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await kafka.stop(consumer)
    if read:
        log.info("recovered %d state records of %s", read, ", ".join(sorted({f"{t.name}/{p}" for t, p in tables})))
    return read


async def changelog_ends(cluster: Cluster, tables: list[tuple[StateTable, int]],
                         asking: AIOKafkaConsumer | None = None) -> dict[TopicPartition, int]:
    """The end of each (table, partition)'s changelog now; asked with ``asking`` (a consumer
    already connected, saving a new one's start) except on tansu, whose ends need a consumer of
    their own (``end_offsets``)."""
    tps = sorted({TopicPartition(t.changelog, p) for t, p in tables})
    if not tps:
        return {}
    return await asking.end_offsets(tps) if asking is not None and not cluster.tansu else await cluster.ends(tps)
