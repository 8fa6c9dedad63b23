"""The Kafka topics: names, partition counts, what keys them. One place for all of them.

The counts below suit a city. A province or the whole country multiplies every count by
``FENGQIAO_PARTITION_SCALE`` (deploy/SCALING.md): topics and the state changelogs beside them must
agree, so every process of a deployment reads the same value, once, at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.runtime import kafka
from streams.config import Settings

log = logging.getLogger(__name__)


SCALE = Settings().partition_scale


@dataclass(frozen=True)
class TopicSpec:
    name: str
    base_partitions: int  # for a city
    key: str
    doc: str
    compacted: bool = False  # only the latest record of a key matters (a state changelog)

    @property
    def partitions(self) -> int:
        return self.base_partitions * SCALE


GRID_REPORTS = TopicSpec("grid-reports", 4, "grid code", "网格员上报, JSON GridReport")
EMERGENCY_BROADCASTS = TopicSpec("emergency-broadcasts", 2, "sender", "应急广播, CAP 1.2 XML or JSON")
BROADCAST_RECEIPTS = TopicSpec("broadcast-receipts", 2, "region code", "播发回执, JSON BroadcastReceipt")
DEPT_ALERTS = TopicSpec("dept-alerts", 4, "department code", "部门预警, JSON DepartmentAlert")
EVENTS = TopicSpec("events", 8, "county code (6 digits)", "normalised, pseudonymised events")
REGIONAL_EVENTS = TopicSpec("events-regional", 4, "group of a city-wide rule (a city code)",
                            "events again, repartitioned for rules grouped coarser than a county (重分区)")
DEAD_LETTERS = TopicSpec("dead-letters", 2, "source topic", "invalid input: original bytes and the reason")
SIGNALS = TopicSpec("signals", 4, "signal id", "risk signals; later versions replace earlier ones")
CENTRE_NOTICES = TopicSpec("centre-notices", 4, "centre code", "notices to the four levels of centres")
DRILL_NOTICES = TopicSpec("drill-notices", 2, "centre code", "notices of drills and tests (演练): never a live centre's")
BROADCAST_REQUESTS = TopicSpec("broadcast-requests", 2, "signal id", "drafts of CAP alerts for red signals, to approve")
DISPATCH_ACTIONS = TopicSpec("dispatch-actions", 4, "signal id", "acknowledge, assign, feedback, close")

INPUTS = (GRID_REPORTS, EMERGENCY_BROADCASTS, BROADCAST_RECEIPTS, DEPT_ALERTS)
ALL = (*INPUTS, EVENTS, REGIONAL_EVENTS, DEAD_LETTERS, SIGNALS, CENTRE_NOTICES, DRILL_NOTICES, DISPATCH_ACTIONS, BROADCAST_REQUESTS)


async def ensure_topics(bootstrap_servers: str, specs: tuple[TopicSpec, ...] = ALL, replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet with their declared partitions (and ``replication``
    copies, 3 on a production cluster); returns those created."""
    admin = kafka.admin(bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(s.name, s.partitions, replication,
                           topic_configs={"cleanup.policy": "compact"} if s.compacted else {})
                  for s in specs if s.name not in existing]
        if not wanted:
            return []
        response = await admin.create_topics(wanted)
        created = []
        for name, code, message in (e[:3] for e in response.topic_errors):
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                raise RuntimeError(f"cannot create topic {name}: error {code} {message}")
        log.info("created topics %s", created)
        return created
    finally:
        await admin.close()


async def end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The true end of each partition, from a fetch's high watermark.

    tansu answers ListOffsets(latest) with the base offset of a partition's last record batch
    plus one, short of the end whenever a producer sent several records in one batch; fetch
    responses carry the right high watermark. Kafka answers both alike, so this is right on both.
    """
    listed = await consumer.end_offsets(tps)
    pending = [tp for tp in tps if listed[tp] > 0]
    if not pending:
        return listed
    consumer.assign(pending)
    for tp in pending:
        consumer.seek(tp, listed[tp] - 1)
    ends = dict(listed)
    for _ in range(20):
        await consumer.getmany(*pending, timeout_ms=250)
        for tp in list(pending):
            if (high := consumer.highwater(tp)) is not None:
                ends[tp] = max(high, listed[tp])
                pending.remove(tp)
        if not pending:
            break
    return ends


Groups = Mapping[str, tuple[TopicSpec, ...]]  # consumer group -> the topics it consumes


async def group_lag(bootstrap_servers: str, groups: Groups) -> int:
    """Messages on their topics that these consumer groups have not committed yet."""
    return sum((await partition_lag(bootstrap_servers, groups)).values())


async def drained(bootstrap_servers: str, groups: Groups, timeout: float) -> float | None:
    """Seconds until the groups have committed everything on their topics, or None after ``timeout``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < timeout:
        if await group_lag(bootstrap_servers, groups) == 0:
            return loop.time() - start
        await asyncio.sleep(0.5)
    return None


async def partition_lag(bootstrap_servers: str, groups: Groups) -> dict[tuple[str, TopicPartition], int]:
    """Per (group, partition), the messages the consumer group has not committed yet.

    The groups' commits are read before the topics' ends. A step commits only after what it
    produced is on the broker, so read in this order the lag of a step downstream can never
    look like nothing while its upstream has just produced and committed: read the other way
    round, the ends would be from before that output and the commit from after it (a drained
    stack that was not, found by the scale-out test)."""
    admin = kafka.admin(bootstrap_servers)
    consumer = kafka.consumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        wanted = {g: [TopicPartition(t.name, p) for t in specs for p in range(t.partitions)] for g, specs in groups.items()}
        # Partitions named: tansu mis-encodes the answer to an OffsetFetch for all of them.
        committed = {g: await admin.list_consumer_group_offsets(g, partitions=tps) for g, tps in wanted.items()}
        ends = await end_offsets(consumer, sorted({tp for tps in wanted.values() for tp in tps}))
        return {(g, tp): max(0, ends[tp] - max(0, committed[g][tp].offset if tp in committed[g] else 0))
                for g, tps in wanted.items() for tp in tps}
    finally:
        await consumer.stop()
        await admin.close()
