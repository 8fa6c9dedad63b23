"""A city-wide rule through the real pipeline: disputes in three districts, which live in
different partitions of the county-keyed events topic, meet after the repartition and raise one
signal for the city, handled by the city centre."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from schemas.contracts.signals import CentreNotice, RiskSignal
from streams import topics
from streams.app import Stack
from streams.detection.ruleset import load_rules
from tests.helpers import grid_report
from tests.integration.conftest import on_kafka
from tests.integration.test_walking_skeleton import read_topic
from tests.unit.test_ruleset import CITY_WAVE

pytestmark = [pytest.mark.integration]

COMMUNITIES = ["210202001004", "210203001001", "210211001001"]  # 中山区, 西岗区, 甘井子区


def test_the_districts_live_in_different_partitions_of_events():
    partitions = list(range(topics.EVENTS.base_partitions))
    assert len({DefaultPartitioner()(c[:6].encode(), partitions, partitions) for c in COMMUNITIES}) == 3


@pytest.mark.asyncio
async def test_disputes_across_districts_raise_one_city_signal(tmp_path, kafka):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "wave.yaml").write_text(CITY_WAVE, encoding="utf-8")
    settings = on_kafka(kafka, data_dir=tmp_path / "data", gateway_port=0, metrics_port=0, app_id="fq-regional",
                        rules_dir=tmp_path / "rules")
    async with Stack(settings, rules=load_rules(tmp_path / "rules"), gateway=False) as stack:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
        await producer.start()
        for n, community in enumerate(COMMUNITIES, 1):
            report = grid_report(n, community=community)
            await producer.send_and_wait(topics.GRID_REPORTS.name, json.dumps(report, ensure_ascii=False).encode(),
                                         key=report["grid_code"].encode())
        await producer.stop()
        (record,) = await read_topic(stack.bootstrap_servers, topics.SIGNALS.name, 1)
        signal = RiskSignal.model_validate_json(record.value)
        assert (signal.rule_id, signal.entity, signal.region_code) == ("city_dispute_wave", "2102", "210200000000")
        assert sorted(e.uid for e in signal.evidence) == ["grid:t-000001", "grid:t-000002", "grid:t-000003"]
        (notice,) = [CentreNotice.model_validate_json(r.value)
                     for r in await read_topic(stack.bootstrap_servers, topics.CENTRE_NOTICES.name, 1)]
        assert (notice.centre_code, notice.role.value) == ("2102", "handle")
        assert await stack.drain(timeout=60)
        assert stack.store.count("signals") == 1 and stack.store.count("events") == 3
