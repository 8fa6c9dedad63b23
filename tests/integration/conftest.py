"""The brokers the integration tests run on: Apache Kafka (KRaft), fetched and started by the
project's own files, and the embedded tansu for the smoke subset that ``make run`` relies on.

Each test (or module, where its tests share one stack) gets a broker of its own, so that what
one test put on a topic is never read by another's workers. A broker lives in the test's
temporary directory and is stopped with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.config import Settings
from streams.runtime.kraft import KRaftCluster
from streams.runtime.topics import TopicSpec

# Broker settings for tests: groups may use short sessions (a killed worker's partitions move
# in seconds, not the default minimum of 6), and retention is enforced within a second.
TEST_BROKER = {"group.min.session.timeout.ms": "1000", "log.retention.check.interval.ms": "1000"}
SESSION = 3.0  # seconds: the test workers' consumer group session


def new_kafka(directory: Path, nodes: int = 1) -> KRaftCluster:
    """A test broker (or cluster), not started yet: ``with new_kafka(d) as kafka:`` runs it."""
    return KRaftCluster(directory, nodes, settings=dict(TEST_BROKER))


@pytest.fixture
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KRaftCluster]:
    """One Apache Kafka broker for one test."""
    with new_kafka(tmp_path_factory.mktemp("kafka")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def module_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KRaftCluster]:
    """One Apache Kafka broker for a module whose tests share one stack."""
    with new_kafka(tmp_path_factory.mktemp("kafka")) as cluster:
        yield cluster


@pytest.fixture
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KRaftCluster]:
    """Three Apache Kafka brokers: topics with 3 copies, 2 of them in sync for a write."""
    with new_kafka(tmp_path_factory.mktemp("kafka3"), nodes=3) as cluster:
        yield cluster


def on_kafka(cluster: KRaftCluster, **values: Any) -> Settings:
    """Settings for a stack or worker on ``cluster`` (its replication, a test's short session)."""
    values.setdefault("kafka_session_timeout", SESSION)
    return Settings(kafka_bootstrap_servers=cluster.bootstrap_servers,
                    kafka_replication_factor=cluster.replication, **values)


async def produce(bootstrap: str, spec: TopicSpec, records: Iterable[tuple[bytes | None, bytes]]) -> None:
    """Put (key, value) records on a topic, each confirmed, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(spec.name, value, key=key)
    finally:
        await producer.stop()


def kafka_env(cluster: KRaftCluster) -> dict[str, str]:
    """The same, for a ``fengqiao`` process."""
    return {"FENGQIAO_KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
            "FENGQIAO_KAFKA_REPLICATION_FACTOR": str(cluster.replication),
            "FENGQIAO_KAFKA_SESSION_TIMEOUT": str(SESSION)}
