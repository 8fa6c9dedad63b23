"""A replay of the same events through a fresh broker, worker and store gives the same signals
with the same ids and levels, even when the topics interleave differently: Kafka orders a
partition, never two topics."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.app import Stack
from tests.helpers import COMMUNITY, dept_alert, grid_report
from tests.integration.conftest import new_kafka, on_kafka
from tests.integration.test_ingestion import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

INPUT = [
    *[(topics.GRID_REPORTS, grid_report(n)) for n in (1, 2, 3, 4)],
    *[(topics.DEPT_ALERTS, dept_alert(n, department=d, category=c)) for n, (d, c) in enumerate(
        [("police", "police_call_110"), ("petition", "visit"), ("fire", "fire_incident")], 10)],
    (topics.GRID_REPORTS, grid_report(20, category="hazard.gas", location={"region_code": COMMUNITY,
                                                                            "address": "7号楼"})),
    (topics.DEPT_ALERTS, dept_alert(30, department="fire", category="gas_alarm",
                                    location={"region_code": COMMUNITY, "address": "7号楼"})),
]


async def signals_of_a_run(tmp_path, name: str, *batches) -> dict[str, tuple[str, str]]:
    """Publish each batch and wait until the pipeline has drained it, then read the signals."""
    with new_kafka(tmp_path / f"kafka-{name}") as kafka:  # a broker per run: the second reads nothing of the first
        settings = on_kafka(kafka, data_dir=tmp_path / name, gateway_port=0, metrics_port=0,
                            app_id=f"fq-replay-{name}")
        async with Stack(settings, gateway=False) as stack:
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
            await producer.start()
            for events in batches:
                for spec, doc in events:
                    await producer.send_and_wait(spec.name, json.dumps(doc, ensure_ascii=False).encode(), key=b"k")
                assert await stack.drain(timeout=60)
            await producer.stop()
            records = await read_all(stack.bootstrap_servers, topics.SIGNALS)
    final: dict[str, tuple[str, str]] = {}
    for r in records:
        s = json.loads(r.value)
        final[s["signal_id"]] = (s["rule_id"], s["level"])
    return final


async def test_a_replay_gives_the_same_signals_with_the_same_ids(tmp_path):
    first = await signals_of_a_run(tmp_path, "first", INPUT)
    alerts, reports = ([e for e in INPUT if (e[0] is topics.DEPT_ALERTS) == is_alert] for is_alert in (True, False))
    again = await signals_of_a_run(tmp_path, "again", alerts, reports)  # each topic's own order kept
    rules = {rule for rule, _ in first.values()}
    assert {"dispute_cluster", "multi_department_concern", "fire_gas_hazard", "compound_community_risk",
            "entity_risk"} <= rules
    assert again == first
