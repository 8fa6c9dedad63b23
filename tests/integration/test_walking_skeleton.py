"""The one real path, with real parts: Apache Kafka (and the embedded tansu, as ``make run`` has
it), the worker, chdb.

Grid reports published on their topic are validated, the dispute rule fires, notices for the
community and street centres land on centre-notices keyed by centre code, and the events,
the signal, its evidence, the notices and the dead letters are rows in ClickHouse.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.contracts.signals import CentreNotice, NoticeRole, RiskSignal
from streams import topics
from streams.api.keys import KeyStore
from streams.app import Stack
from streams.config import Settings
from streams.detection.ruleset import load_rules
from tests.helpers import COMMUNITY, OTHER_COMMUNITY, grid_report, id_number
from tests.integration.conftest import on_kafka

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

DISPUTES = [grid_report(n) for n in (1, 2, 3)]
OTHERS = [grid_report(4, community=OTHER_COMMUNITY), grid_report(5, category="hazard.gas"),
          grid_report(6, category="care.elderly_alone")]
NOT_ADMITTED = json.dumps(grid_report(7, category="party.recruitment"), ensure_ascii=False).encode()
GARBAGE = b"\x00\x01 not a report"
GRID_KEY = [""]


async def read_topic(bootstrap: str, topic: str, want: int, timeout: float = 30.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < want:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(records)
    finally:
        await consumer.stop()
    return got


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["kafka", "tansu"])
async def stack(request, tmp_path_factory):
    where = dict(data_dir=tmp_path_factory.mktemp("fq"), gateway_port=0, metrics_port=0, app_id="fq-skeleton")
    settings = on_kafka(request.getfixturevalue("module_kafka"), **where) if request.param == "kafka" \
        else Settings(**where)
    _, GRID_KEY[0] = KeyStore(settings.keys_path).add("grid")
    async with Stack(settings) as running:
        producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap_servers, acks="all")
        await producer.start()
        for report in DISPUTES + OTHERS:
            body = json.dumps(report, ensure_ascii=False).encode()
            await producer.send_and_wait(topics.GRID_REPORTS.name, body, key=report["grid_code"].encode())
        await producer.send_and_wait(topics.GRID_REPORTS.name, NOT_ADMITTED)
        await producer.send_and_wait(topics.GRID_REPORTS.name, GARBAGE)
        await producer.stop()
        yield running


async def test_signal_is_raised_with_its_evidence(stack):
    records = await read_topic(stack.bootstrap_servers, topics.SIGNALS.name, 2)
    by_rule = {RiskSignal.model_validate_json(r.value).rule_id: r for r in records}
    record = by_rule["dispute_cluster"]
    signal = RiskSignal.model_validate_json(record.value)
    assert signal.rule_id == "dispute_cluster" and signal.level.value == "yellow"
    assert signal.entity == COMMUNITY and record.key == signal.signal_id.encode()
    assert sorted(e.uid for e in signal.evidence) == ["grid:t-000001", "grid:t-000002", "grid:t-000003"]
    risk = RiskSignal.model_validate_json(by_rule["entity_risk"].value)  # 矛盾纠纷聚集 adds 20: blue
    assert (risk.entity, risk.level.value) == (f"community:{COMMUNITY}", "blue")
    assert [e.uid for e in risk.evidence] == [f"signal:{signal.signal_id}"]


async def test_notices_reach_community_and_street_keyed_by_centre(stack):
    records = await read_topic(stack.bootstrap_servers, topics.CENTRE_NOTICES.name, 3)
    notices = {r.key.decode(): n for r in records
               if (n := CentreNotice.model_validate_json(r.value)).rule_id == "dispute_cluster"}
    assert set(notices) == {COMMUNITY, COMMUNITY[:9]}
    assert notices[COMMUNITY].role is NoticeRole.handle
    assert notices[COMMUNITY[:9]].role is NoticeRole.inform


async def test_invalid_input_is_dead_lettered_whole(stack):
    records = await read_topic(stack.bootstrap_servers, topics.DEAD_LETTERS.name, 2)
    by_value = {r.value: dict(r.headers) for r in records}
    assert by_value[NOT_ADMITTED]["fq.reason"] == b"not_in_catalogue"
    assert by_value[NOT_ADMITTED]["fq.field"] == b"category"
    assert by_value[GARBAGE]["fq.reason"] == b"invalid_json"
    assert by_value[GARBAGE]["fq.source.topic"] == b"grid-reports"


async def test_everything_is_stored_once_without_identifiers(stack):
    assert await stack.drain(timeout=30)
    store = stack.store
    counts = {t: store.count(t) for t in store.tables() if t != "regions"}
    # the dispute signal and the community's entity-risk signal (blue: its community centre only)
    assert counts == {"events": 6, "signals": 2, "signal_evidence": 4, "notices": 3, "dead_letters": 2,
                      "dispatch_actions": 0, "late_events": 0, "person_links": 12,
                      "rule_changes": len(load_rules()),  # the pack the worker started with, rule by rule
                      "silences": 0}
    rollups = store.query("SELECT (SELECT uniqExactMerge(events) FROM fengqiao.events_hourly) AS events, "
                          "(SELECT uniqExactMerge(signals) FROM fengqiao.signals_hourly) AS signals")
    assert rollups == [{"events": 6, "signals": 2}]
    summary = stack.summary()
    assert (summary["events_in"], summary["events_valid"], summary["events_dlq"]) == (8, 6, 2)
    assert summary["events_in"] == summary["events_valid"] + summary["events_dlq"]
    dump = json.dumps([store.query(f"SELECT * FROM fengqiao.{t}") for t in counts], ensure_ascii=False, default=str)
    for secret in ("张伟", "李娜", "13812345678", id_number(2)):
        assert secret not in dump


async def test_gateway_accepts_after_the_broker_acknowledged_and_names_failing_fields(stack):
    base = f"http://127.0.0.1:{stack.gateway.port}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {GRID_KEY[0]}"}) as http:
        async with http.post(f"{base}/v1/grid-reports", json=grid_report(50, category="hazard.fire")) as r:
            assert r.status == 202 and (await r.json()) == {"accepted": ["t-000050"]}
        bad = grid_report(51)
        bad["location"]["lat"] = 123
        async with http.post(f"{base}/v1/grid-reports", json=bad) as r:
            assert r.status == 422
            assert [e["field"] for e in (await r.json())["errors"]] == ["location.lat"]
        async with http.get(f"http://127.0.0.1:{stack.metrics_port}/metrics") as r:
            text = await r.text()
            assert 'fengqiao_events_in_total{topic="grid-reports"}' in text
    assert await stack.drain(timeout=30)
    assert stack.store.query("SELECT count() AS n FROM fengqiao.events WHERE event_id = 't-000050'") == [{"n": 1}]
