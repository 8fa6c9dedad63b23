"""Kafka clients (客户端), made in one place so that every one of them speaks the deployment's
security: plaintext on the embedded broker, TLS and/or SASL on a production Kafka.

A ``Cluster`` is the Kafka one process talks to: its address, the security every client is
given, the topology of its topics (partition scale, replication) and the consumer timings. The
composition root builds it once from ``Settings`` (``Cluster.of``); nothing here reads the
environment, so two clusters in one process (a test, a drill) never share a cached setting.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import Settings
from streams.runtime.topics import TopicSpec, Topology, end_offsets

log = logging.getLogger(__name__)

# aiokafka (0.14) asks a partition's leader for the offset to reset a position to (a partition
# with no committed offset yet, a seek to the beginning) and, when that node answers
# NotLeaderForPartition, retries it without refreshing its metadata: the position stays
# unresolved until the next periodic refresh, 5 minutes by default. The broker-paused drill
# found it (a node SIGSTOPped and resumed lost its leaderships; the worker waited on it 3 minutes
# and more). The Java client refreshes on that error (KAFKA-9535); here metadata is refreshed
# every 10 s instead, a small request.
METADATA_MAX_AGE_MS = 10_000


def security_options(settings: Settings) -> dict[str, Any]:
    """The aiokafka keyword arguments for the configured security."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                    str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
        options["ssl_context"] = context
    if protocol.startswith("SASL"):
        if not (settings.kafka_sasl_username and settings.kafka_sasl_password):
            raise ValueError(f"{protocol} needs FENGQIAO_KAFKA_SASL_USERNAME and FENGQIAO_KAFKA_SASL_PASSWORD")
        options |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username,
                    "sasl_plain_password": settings.kafka_sasl_password.get_secret_value()}
    return options


@dataclass(frozen=True)
class Cluster:
    """One Kafka as this process sees it; every client of the process is made here."""

    bootstrap_servers: str
    security: dict[str, Any] = field(default_factory=lambda: {"security_protocol": "PLAINTEXT"})
    topology: Topology = Topology()
    session_timeout: float = 30.0  # seconds, for consumer groups
    fetch_max_wait_ms: int = 100
    tansu: bool = False  # the embedded broker: its defects are worked around, and only there

    @classmethod
    def of(cls, settings: Settings, bootstrap_servers: str | None = None) -> Cluster:
        """The configured Kafka (or ``bootstrap_servers``, a broker this process started)."""
        address = bootstrap_servers or settings.kafka_bootstrap_servers
        if not address:
            raise ValueError("no Kafka: set FENGQIAO_KAFKA_BOOTSTRAP_SERVERS or start the embedded broker")
        return cls(address, security_options(settings),
                   Topology(settings.partition_scale, settings.kafka_replication_factor),
                   settings.session_timeout, settings.kafka_fetch_max_wait_ms, settings.tansu)

    def partitions(self, spec: TopicSpec) -> int:
        return self.topology.partitions(spec)

    def topic_partitions(self, *specs: TopicSpec) -> list[TopicPartition]:
        """Every partition of the topics, as this deployment's topology has them."""
        return [TopicPartition(s.name, p) for s in specs for p in range(self.partitions(s))]

    def producer(self, **kwargs: Any) -> AIOKafkaProducer:
        """A producer; idempotent (no duplicate from a retried send) except on tansu, which has
        no idempotent producer."""
        if not self.tansu:
            kwargs.setdefault("enable_idempotence", True)
            kwargs.setdefault("acks", "all")
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, **self.security, **kwargs)

    def consumer(self, *topic_names: str, **kwargs: Any) -> AIOKafkaConsumer:
        kwargs.setdefault("metadata_max_age_ms", METADATA_MAX_AGE_MS)
        return AIOKafkaConsumer(*topic_names, bootstrap_servers=self.bootstrap_servers, **self.security, **kwargs)

    def admin(self) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, **self.security)

    async def ends(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The end of each partition now, read by a consumer of its own."""
        consumer = self.consumer(enable_auto_commit=False)
        await consumer.start()
        try:
            return await end_offsets(consumer, tps, self.tansu)
        finally:
            await stop(consumer)


async def stop(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """Stop a client. With its broker gone, aiokafka can end a stop with a stray CancelledError of
    its own, which must not abort the rest of a shutdown; a cancellation of this stop still does."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("%s ended its stop with a CancelledError of its own", type(client).__name__)
    except Exception as exc:
        log.warning("%s did not stop cleanly: %s", type(client).__name__, exc)
