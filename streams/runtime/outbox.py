"""The outbox (发件箱) of one batch: every record a step's batch produces, gathered per topic
partition into Kafka record batches, sent together and awaited together.

One wait tells the step that everything its batch produced is on the broker, and a record costs
an append to a record batch rather than a future of its own. Keys are partitioned as every Kafka
client does (murmur2), so that a key lands where any other producer would put it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from streams.runtime.state import StateTable

Headers = Sequence[tuple[str, bytes]]


@lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (remembered: most keys recur,
    a county code or a centre's, and murmur2 is Python here)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Outbox:
    def __init__(self, producer: AIOKafkaProducer, partitions: Mapping[str, int]) -> None:
        self.producer = producer
        self.partitions = partitions  # topic -> partition count
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[tuple[str, int], Any]] = []
        self._spread = 0

    def add(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = (),
            partition: int | None = None) -> None:
        """Queue one record: to ``partition``, else to its key's partition (keyless ones in turn)."""
        if partition is None:
            if key is None:
                self._spread += 1
                partition = self._spread % self.partitions[topic]
            else:
                partition = partition_of(key, self.partitions[topic])
        where = (topic, partition)
        builder = self._open.get(where)
        if builder is None:
            builder = self._open[where] = self.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=list(headers)) is None:
            self._full.append((where, builder))  # full: it goes as it is, a new one takes the record
            builder = self._open[where] = self.producer.create_batch()
            if builder.append(timestamp=None, key=key, value=value, headers=list(headers)) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit a batch for {topic}")

    async def send(self) -> None:
        """Send everything queued and wait until the broker has acknowledged all of it; raises if
        any of it failed (nothing is then acknowledged upstream, and the batch is read again)."""
        queued, self._full = [*self._full, *self._open.items()], []
        self._open = {}
        sent = [await self.producer.send_batch(builder, topic, partition=partition)
                for (topic, partition), builder in queued]
        await asyncio.gather(*sent)


class Output:
    """What a process's steps produce with: one producer, and the partition counts of its topics
    (learnt from the broker at start)."""

    def __init__(self, producer: AIOKafkaProducer, partitions: dict[str, int] | None = None) -> None:
        self.producer, self.partitions = producer, partitions if partitions is not None else {}

    def outbox(self) -> Outbox:
        return Outbox(self.producer, self.partitions)

    async def flush(self, tables: Iterable[StateTable]) -> None:
        """Changed state to the changelogs, once per key: after the outputs it accounts for."""
        outbox = self.outbox()
        for table in tables:
            for partition, key, value in table.changes():
                outbox.add(table.changelog, key, value, partition=partition)
        await outbox.send()
