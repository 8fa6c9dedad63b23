"""The webhook notifier (推送): each centre's notices delivered to its hooks, off the pipeline's path.

The notifier is its own consumer group on ``centre-notices``: a slow, failing or hanging receiver
holds back only its own deliveries, never the pipeline. A delivery is signed and retried as
``streams.notify.webhooks`` says; after the last attempt the notice goes to the ``dead-letters``
topic, whole, with the reason. An offset is committed once every delivery of it and of
everything before it is settled, so a restart re-sends at most what was in flight: receivers
deduplicate by ``X-Fengqiao-Notice-Id`` (with ``X-Fengqiao-Notice-Version``). Drills are never
delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.contracts.signals import CentreNotice
from streams import topics
from streams.metrics import Metrics
from streams.notify.webhooks import Hook, Retry, sign
from streams.runtime import kafka
from streams.runtime.deadletter import Origin
from streams.runtime.kafka import Cluster

log = logging.getLogger(__name__)


class Notifier:
    MAX_IN_FLIGHT = 10_000  # notices held before consumption pauses

    def __init__(self, cluster: Cluster, hooks: dict[str, list[Hook]], metrics: Metrics, group: str,
                 retry: Retry = Retry()) -> None:
        self.cluster = cluster
        self.hooks = hooks
        self.metrics = metrics
        self.group = group
        self.retry = retry
        self._pending: defaultdict[TopicPartition, set[int]] = defaultdict(set)
        self._next: dict[TopicPartition, int] = {}  # one past the highest offset read
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._producer = self.cluster.producer(acks="all")
        await self._producer.start()
        self._consumer = self.cluster.consumer(topics.CENTRE_NOTICES.name, group_id=self.group,
                                               enable_auto_commit=False, auto_offset_reset="earliest")
        await self._consumer.start()
        self._loop_task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        for task in [self._loop_task, *self._tasks]:
            if task:
                task.cancel()
        await asyncio.gather(*[t for t in [self._loop_task, *self._tasks] if t], return_exceptions=True)
        for client in (self._consumer, self._producer):
            if client:
                await kafka.stop(client)
        if self._http:
            await self._http.close()

    async def _run(self) -> None:
        assert self._consumer is not None
        last_commit = time.monotonic()
        while True:
            if sum(map(len, self._pending.values())) >= self.MAX_IN_FLIGHT:
                await asyncio.sleep(0.1)  # deliveries are behind: read no more until they catch up
            else:
                for tp, records in (await self._consumer.getmany(timeout_ms=500, max_records=1000)).items():
                    for record in records:
                        self._take(tp, record)
            if time.monotonic() - last_commit >= 1.0:
                await self._commit()
                last_commit = time.monotonic()

    def _take(self, tp: TopicPartition, record: Any) -> None:
        self._next[tp] = record.offset + 1
        notice = CentreNotice.model_validate_json(record.value)
        hooks = [] if notice.drill else self.hooks.get(notice.centre_code, [])
        if not hooks:
            return
        self._pending[tp].add(record.offset)
        task = asyncio.create_task(self._deliver_all(tp, record, notice, hooks))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self) -> None:
        """Commit each partition up to its lowest delivery still in flight."""
        assert self._consumer is not None
        offsets = {tp: min(self._pending[tp], default=end) for tp, end in self._next.items()}
        if offsets:
            try:
                await self._consumer.commit(offsets)
            except Exception as exc:  # e.g. during a rebalance: the next round commits
                log.warning("webhook offsets not committed: %s", exc)

    async def _deliver_all(self, tp: TopicPartition, record: Any, notice: CentreNotice, hooks: list[Hook]) -> None:
        try:
            await asyncio.gather(*(self._deliver(hook, record, notice) for hook in hooks))
        finally:
            self._pending[tp].discard(record.offset)

    async def _deliver(self, hook: Hook, record: Any, notice: CentreNotice) -> None:
        assert self._http is not None
        body = record.value
        error = ""
        for attempt in range(1, self.retry.attempts + 1):
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Fengqiao-Notice-Id": notice.notice_id,
                       "X-Fengqiao-Notice-Version": str(notice.signal_version),
                       "X-Fengqiao-Timestamp": timestamp, "X-Fengqiao-Signature": sign(hook.key, timestamp, body)}
            try:
                async with self._http.post(hook.url, data=body, headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=self.retry.timeout)) as response:
                    if 200 <= response.status < 300:
                        self.metrics.notices.labels("webhook", notice.centre_level.value).inc()
                        return
                    error = f"HTTP {response.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt < self.retry.attempts:
                self.metrics.webhook_retries.labels(notice.centre_level.value).inc()
                await asyncio.sleep(self.retry.delay(attempt))
        await self._dead_letter(hook, record, error)

    async def _dead_letter(self, hook: Hook, record: Any, error: str) -> None:
        """The notice, whole, on the dead-letter topic with why it could not be delivered."""
        assert self._producer is not None
        where = Origin(topics.CENTRE_NOTICES.name, record.partition, record.offset)
        letter = where.dead(record.value, "webhook_undeliverable", hook.url,
                            f"{self.retry.attempts} attempts to {hook.centre} failed; last: {error}")
        await self._producer.send_and_wait(topics.DEAD_LETTERS.name, letter.raw, key=topics.CENTRE_NOTICES.name.encode(),
                                           headers=letter.headers())
        self.metrics.webhook_dead_letters.labels(hook.centre).inc()
        log.warning("notice at %s:%s to %s dead-lettered: %s", where.topic, where.offset, hook.url, error)
