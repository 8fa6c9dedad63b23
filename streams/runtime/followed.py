"""A compacted topic read whole, then followed (a global table): the latest value of each key,
in memory, in every process that needs all of it (silences in each worker and in the gateway).

``start`` returns once everything on the topic when it began has been read; a background task
then applies what comes after. A value of None (a tombstone) removes its key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from streams.runtime import kafka
from streams.runtime.kafka import Cluster
from streams.runtime.topics import TopicSpec

log = logging.getLogger(__name__)


class FollowedTable:
    def __init__(self, cluster: Cluster, spec: TopicSpec, parse: Callable[[bytes], object]) -> None:
        self.cluster, self.spec, self.parse = cluster, spec, parse
        self.values: dict[str, object] = {}
        self._consumer = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        tps = self.cluster.topic_partitions(self.spec)
        ends = await self.cluster.ends(tps)
        consumer = self._consumer = self.cluster.consumer(enable_auto_commit=False)
        await consumer.start()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            await self._read(500)
        self._task = asyncio.create_task(self._follow(), name=f"follow-{self.spec.name}")

    def put(self, key: str, value: object) -> None:
        """What this process just wrote, known before it is read back."""
        self.values[key] = value

    async def _read(self, timeout_ms: int) -> None:
        assert self._consumer is not None
        for records in (await self._consumer.getmany(timeout_ms=timeout_ms, max_records=1000)).values():
            for r in records:
                key = r.key.decode() if r.key else ""
                if r.value is None:
                    self.values.pop(key, None)
                    continue
                try:
                    self.values[key] = self.parse(r.value)
                except ValueError:  # a record this version cannot read: said, and left out
                    log.error("%s: record %s at %d/%d cannot be read; left out", self.spec.name, key, r.partition,
                              r.offset)

    async def _follow(self) -> None:
        while True:
            try:
                await self._read(1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s could not be read; retrying", self.spec.name)
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await kafka.stop(self._consumer)
        self._task = self._consumer = None
