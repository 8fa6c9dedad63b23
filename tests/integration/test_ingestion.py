"""All four inputs through the real broker: nothing lost, duplicates counted, no identifier in clear.

Publishes grid reports, department alerts, a CAP XML broadcast and its JSON Update, terminal
receipts, duplicates, hostile and broken input, and one report with Debian's kcat (a non-Python
Kafka client), then accounts for every message by count and by id.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.contracts.broadcasts import EmergencyBroadcast
from schemas.contracts.cap import parse_cap
from streams import topics
from streams.app import Stack
from streams.runtime.topics import end_offsets
from streams.worker.pipeline import now_beijing
from tests.helpers import COMMUNITY, OTHER_COMMUNITY, cap_xml, dept_alert, grid_report, id_number
from tests.integration.conftest import on_kafka
from tests.unit.test_contracts import BILLION_LAUGHS, XXE

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def body(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


UPDATE = parse_cap(cap_xml("DL-EBS-0002", "Update", references="dalian-ebs,DL-EBS-0001,2026-11-20T08:00:00+08:00"))
RECEIPT = {"event_id": "r-1", "broadcast_sender": "dalian-ebs", "broadcast_identifier": "DL-EBS-0001",
           "region_code": COMMUNITY, "terminals_total": 10, "terminals_played": 10,
           "occurred_at": "2026-11-20T08:05:00+08:00"}
PUBLISHED: list[tuple[str, bytes]] = [
    *[(topics.GRID_REPORTS.name, body(grid_report(n))) for n in range(1, 6)],
    (topics.GRID_REPORTS.name, body(grid_report(3))),  # duplicate id: suppressed
    (topics.GRID_REPORTS.name, body(grid_report(7, category="party.recruitment"))),
    *[(topics.DEPT_ALERTS.name, body(dept_alert(n, community=OTHER_COMMUNITY))) for n in range(1, 4)],
    (topics.DEPT_ALERTS.name, body(dept_alert(2, community=OTHER_COMMUNITY))),  # duplicate
    (topics.DEPT_ALERTS.name, body(dept_alert(9, department="police", category="cold_wave"))),
    (topics.DEPT_ALERTS.name, b"\xff\xfe garbage"),
    (topics.EMERGENCY_BROADCASTS.name, cap_xml(geocodes=("210202", "210203"))),
    (topics.EMERGENCY_BROADCASTS.name, body(EmergencyBroadcast.model_validate(UPDATE).model_dump(mode="json", by_alias=True))),
    (topics.EMERGENCY_BROADCASTS.name, XXE),
    (topics.EMERGENCY_BROADCASTS.name, BILLION_LAUGHS),
    (topics.BROADCAST_RECEIPTS.name, body(RECEIPT)),
    (topics.BROADCAST_RECEIPTS.name, body({**RECEIPT, "event_id": "r-2", "terminals_played": 11})),
]
SECRETS = ["张伟", "李娜", "13812345678", "13987654321", *(id_number(i) for i in range(1, 8))]


async def read_all(bootstrap: str, spec: topics.TopicSpec) -> list:
    """Every message now on a topic, from the beginning to the end of each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(spec.name, p) for p in range(spec.base_partitions)]
        ends = await end_offsets(consumer, tps)  # tansu's ListOffsets falls short
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got: list = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                got.extend(records)
        return got
    finally:
        await consumer.stop()


class Clock:
    """Beijing time, or as far ahead of it as a test moves it."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return now_beijing() + self.ahead


CLOCK = Clock()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory, module_kafka):
    settings = on_kafka(module_kafka, data_dir=tmp_path_factory.mktemp("fq"), gateway_port=0, metrics_port=0,
                        app_id="fq-ingestion")
    async with Stack(settings, clock=CLOCK) as running:
        producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap_servers, acks="all")
        await producer.start()
        for topic, value in PUBLISHED:
            await producer.send_and_wait(topic, value, key=b"k")
        await producer.stop()
        assert await running.drain(timeout=60)
        yield running


async def test_every_message_is_accounted_for_by_count(stack):
    s = stack.summary()
    assert s["events_in"] == len(PUBLISHED)
    assert s["events_in"] == s["events_valid"] + s["events_dlq"] + s["events_duplicate"]
    assert (s["events_valid"], s["events_dlq"], s["events_duplicate"]) == (11, 6, 2)


async def test_every_message_is_accounted_for_by_id(stack):
    events = stack.store.query("SELECT uid, event_id, publisher FROM fengqiao.events FINAL")
    stored = {r["uid"] for r in events}
    expected_valid = {
        *(f"grid:t-{n:06d}" for n in (1, 2, 3, 4, 5)),
        *(f"police:police-{n:06d}" for n in (1, 2, 3)),
        "dalian-ebs:DL-EBS-0001@210202000000", "dalian-ebs:DL-EBS-0001@210203000000",
        "dalian-ebs:DL-EBS-0002@210202000000", "receipts:dalian-ebs:r-1",
    }
    assert stored == expected_valid
    letters = await read_all(stack.bootstrap_servers, topics.DEAD_LETTERS)
    by_bytes = {record.value: dict(record.headers) for record in letters}
    assert len(letters) == len(by_bytes) == 6  # each kept once, with its original bytes
    expected_dead = {
        PUBLISHED[6][1]: ("grid-reports", "not_in_catalogue", "category"),
        PUBLISHED[11][1]: ("dept-alerts", "not_in_catalogue", "category"),
        PUBLISHED[12][1]: ("dept-alerts", "invalid_encoding", ""),
        XXE: ("emergency-broadcasts", "xml_forbidden", ""),
        BILLION_LAUGHS: ("emergency-broadcasts", "xml_forbidden", ""),
        PUBLISHED[18][1]: ("broadcast-receipts", "invalid_field", ""),
    }
    got = {raw: (h["fq.source.topic"].decode(), h["fq.reason"].decode(), h["fq.field"].decode())
           for raw, h in by_bytes.items()}
    assert got == expected_dead
    stored_dead = stack.store.query("SELECT count() AS n, uniqExact(raw_sha256) AS u FROM fengqiao.dead_letters FINAL")
    assert stored_dead == [{"n": 6, "u": 6}]


async def test_update_resolved_its_reference(stack):
    [row] = stack.store.query("SELECT attributes FROM fengqiao.events FINAL WHERE event_id = 'DL-EBS-0002@210202000000'")
    assert row["attributes"]["references_resolved"] == "dalian-ebs,DL-EBS-0001"


async def test_no_identifier_in_clear_after_validation(stack):
    after_validation = (topics.EVENTS, topics.SIGNALS, topics.CENTRE_NOTICES)
    texts = []
    for spec in after_validation:
        texts.extend(r.value.decode("utf-8", "replace") for r in await read_all(stack.bootstrap_servers, spec))
    for table in stack.store.tables():
        texts.append(json.dumps(stack.store.query(f"SELECT * FROM fengqiao.{table}"), ensure_ascii=False, default=str))
    blob = "\n".join(texts)
    assert "p-" in blob  # pseudonyms are there instead
    for secret in SECRETS:
        assert secret not in blob, secret
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", blob)


async def test_publish_command_sends_what_passes_and_lists_what_fails(stack, tmp_path):
    jsonl = tmp_path / "alerts.jsonl"
    good, bad = dept_alert(60, community=OTHER_COMMUNITY), dept_alert(61, category="cold_wave")
    jsonl.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in (good, bad)) + "\n", encoding="utf-8")
    cap = tmp_path / "alert.xml"
    cap.write_bytes(cap_xml("PUB-CAP-1"))
    fengqiao = str(Path(sys.executable).with_name("fengqiao"))
    env = {**os.environ, "FENGQIAO_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers}
    out = await asyncio.to_thread(subprocess.run, [fengqiao, "publish", str(jsonl), "--quiet"],
                                  capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "1 accepted onto dept-alerts, 1 rejected" in out.stdout and "category" in out.stdout
    out = await asyncio.to_thread(subprocess.run, [fengqiao, "publish", str(cap)],
                                  capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and "1 accepted onto emergency-broadcasts" in out.stdout, out.stderr
    assert "100%" in out.stderr  # the progress bar
    assert await stack.drain(timeout=30)
    ids = {r["event_id"] for r in stack.store.query("SELECT event_id FROM fengqiao.events FINAL")}
    assert {"police-000060", "PUB-CAP-1@210202000000"} <= ids and "police-000061" not in ids


async def test_ids_are_forgotten_after_the_duplicate_horizon(stack):
    """Last in this module: it moves the worker's clock two days on."""
    before = stack.summary()
    CLOCK.ahead = timedelta(days=2)
    try:
        assert await stack.pipeline.forget_expired() >= 11
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
        await producer.start()
        await producer.send_and_wait(topics.GRID_REPORTS.name, body(grid_report(1)), key=b"k")
        await producer.stop()
        assert await stack.drain(timeout=30)
    finally:
        CLOCK.ahead = timedelta(0)
    after = stack.summary()
    assert after["events_valid"] == before["events_valid"] + 1  # accepted again, not a duplicate
    assert after["events_duplicate"] == before["events_duplicate"]
