"""Topics and their topology (主题与分区): what a topic is, how many partitions it has in a
deployment, creating the missing ones, and how far consumer groups are behind.

A ``TopicSpec`` declares a topic's partitions for a city; a deployment's ``Topology`` multiplies
them (``FENGQIAO_PARTITION_SCALE``: 1 city, 2 province, 8 country, deploy/SCALING.md). Topics and
the state changelogs beside them must agree, so every process of a deployment is given the same
topology by its composition root; nothing here reads the environment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

if TYPE_CHECKING:
    from streams.runtime.kafka import Cluster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    base_partitions: int  # for a city; a deployment's topology scales it
    key: str
    doc: str
    compacted: bool = False  # only the latest record of a key matters (a state changelog)
    retention: timedelta | None = None  # how long records are kept; None: for good (never a broker's default)


@dataclass(frozen=True)
class Topology:
    """How a deployment sizes its topics: partitions scaled, copies of each, and how many of
    those must have a write before it is acknowledged (with producers' ``acks=all``)."""

    scale: int = 1
    replication: int = 1

    def partitions(self, spec: TopicSpec) -> int:
        return spec.base_partitions * self.scale

    @property
    def min_insync(self) -> int:
        """2 of 3 copies (one broker may be down and writes still go on); 1 below 3."""
        return 2 if self.replication >= 3 else 1

    def configs(self, spec: TopicSpec) -> dict[str, str]:
        """The topic's configuration on the broker, declared here once for every topic created."""
        retention = -1 if spec.compacted or spec.retention is None else int(spec.retention.total_seconds() * 1000)
        return {"cleanup.policy": "compact" if spec.compacted else "delete", "retention.ms": str(retention),
                "min.insync.replicas": str(self.min_insync)}


async def ensure_topics(cluster: Cluster, specs: tuple[TopicSpec, ...]) -> list[str]:
    """Create the topics that do not exist yet, sized by the cluster's topology; returns those created."""
    admin = cluster.admin()
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(s.name, cluster.partitions(s), cluster.topology.replication,
                           topic_configs=cluster.topology.configs(s))
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


async def end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition], tansu: bool = False
                      ) -> dict[TopicPartition, int]:
    """The end of each partition (the offset the next record will take).

    Apache Kafka's ListOffsets(latest) is the end. tansu's is not (a tansu defect, worked around
    only there): it answers with the base offset of a partition's last record batch plus one,
    short of the end whenever a producer sent several records in one batch; its fetch responses
    carry the right high watermark, so on tansu the end is read from a fetch.
    """
    listed = await consumer.end_offsets(tps)
    if not tansu:
        return listed
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


async def group_lag(cluster: Cluster, groups: Groups) -> int:
    """Messages on their topics that these consumer groups have not committed yet."""
    return sum((await partition_lag(cluster, groups)).values())


async def drained(cluster: Cluster, groups: Groups, timeout: float) -> float | None:
    """Seconds until the groups have committed everything on their topics, or None after ``timeout``.

    The timeout bounds the calls to the broker too: a lag query that hangs (a group coordinator
    not yet available, a broker going down) held a stopping ``fengqiao up`` past a minute."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(timeout):
            while await group_lag(cluster, groups) != 0:
                await asyncio.sleep(0.5)
            return loop.time() - start
    except TimeoutError:
        return None


async def partition_lag(cluster: Cluster, groups: Groups) -> dict[tuple[str, TopicPartition], int]:
    """Per (group, partition), the messages the consumer group has not committed yet.

    The groups' commits are read before the topics' ends. A step commits only after what it
    produced is on the broker, so read in this order the lag of a step downstream can never
    look like nothing while its upstream has just produced and committed: read the other way
    round, the ends would be from before that output and the commit from after it (a drained
    stack that was not, found by the scale-out test)."""
    admin = cluster.admin()
    consumer = cluster.consumer(enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        wanted = {g: cluster.topic_partitions(*specs) for g, specs in groups.items()}
        # Partitions named (as any client may): tansu mis-encodes the answer to an OffsetFetch for all.
        committed = {g: await admin.list_consumer_group_offsets(g, partitions=tps) for g, tps in wanted.items()}
        ends = await end_offsets(consumer, sorted({tp for tps in wanted.values() for tp in tps}), cluster.tansu)
        return {(g, tp): max(0, ends[tp] - max(0, committed[g][tp].offset if tp in committed[g] else 0))
                for g, tps in wanted.items() for tp in tps}
    finally:
        await consumer.stop()
        await admin.close()
