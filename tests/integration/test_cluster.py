"""fengqiao on a three-broker Apache Kafka cluster: every topic it creates carries the configs a
production cluster needs, declared once (3 copies, 2 in sync, retention or compaction), and the
pipeline goes on through a broker's crash, losing nothing and storing nothing twice."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas.contracts.signals import RiskSignal
from streams import topics
from streams.app import Stack
from tests.helpers import COMMUNITY, OTHER_COMMUNITY, grid_report
from tests.integration.conftest import on_kafka
from tests.integration.test_ingestion import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def topic_configs(stack: Stack, names: list[str]) -> dict[str, dict[str, str]]:
    admin = stack.cluster.admin()
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        return {r[3]: {c[0]: c[1] for c in r[4]} for r in response.resources}
    finally:
        await admin.close()


async def replicas(stack: Stack, name: str) -> list[int]:
    admin = stack.cluster.admin()
    await admin.start()
    try:
        [described] = await admin.describe_topics([name])
        return [len(p["replicas"]) for p in described["partitions"]]
    finally:
        await admin.close()


@pytest.mark.timeout(600)
async def test_on_three_brokers_topics_are_replicated_and_a_broker_crash_loses_nothing(tmp_path, kafka_cluster):
    settings = on_kafka(kafka_cluster, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-three")
    async with Stack(settings, gateway=False) as stack:
        changelog = stack.pipeline.tables[0].changelog
        configs = await topic_configs(stack, [topics.GRID_REPORTS.name, topics.DEAD_LETTERS.name,
                                              topics.CENTRE_NOTICES.name, changelog])
        assert {name: c["min.insync.replicas"] for name, c in configs.items()} == dict.fromkeys(configs, "2")
        assert configs[changelog]["cleanup.policy"] == "compact"
        assert configs[topics.GRID_REPORTS.name]["retention.ms"] == str(7 * 86_400_000)
        assert configs[topics.DEAD_LETTERS.name]["retention.ms"] == str(30 * 86_400_000)
        assert configs[topics.CENTRE_NOTICES.name]["retention.ms"] == str(30 * 86_400_000)  # the desk keeps its own
        assert set(await replicas(stack, topics.EVENTS.name)) == {3}

        producer = stack.cluster.producer(acks="all")
        await producer.start()
        try:
            async def send(reports: list[dict]) -> None:
                for r in reports:
                    await producer.send_and_wait(topics.GRID_REPORTS.name, json.dumps(r, ensure_ascii=False).encode(),
                                                 key=r["grid_code"].encode())

            background = [grid_report(n, community=OTHER_COMMUNITY, category="hazard.gas") for n in range(100, 160)]
            await send([grid_report(1), *background[:30]])
            victim = kafka_cluster.members[0]
            kafka_cluster.kill(victim)  # SIGKILL under load: its partitions' leaders move to the others
            await send([grid_report(2), *background[30:]])
            await asyncio.sleep(5)
            await asyncio.to_thread(kafka_cluster.restart, victim)
            await send([grid_report(3)])
        finally:
            await producer.stop()
        assert await stack.drain(timeout=180)
        stored = stack.store.query("SELECT uid, count() AS n FROM fengqiao.events GROUP BY uid")
        signals = [RiskSignal.model_validate_json(r.value) for r in await read_all(stack.bootstrap_servers,
                                                                                     topics.SIGNALS)]
    assert {r["uid"] for r in stored} == {f"grid:t-{n:06d}" for n in (1, 2, 3, *range(100, 160))}
    assert all(r["n"] == 1 for r in stored), "nothing stored twice"
    disputes = [s for s in signals if s.rule_id == "dispute_cluster"]
    assert {s.entity for s in disputes} == {COMMUNITY}
    assert sorted(e.uid for e in disputes[-1].evidence) == ["grid:t-000001", "grid:t-000002", "grid:t-000003"]
