"""The dispatch desk's cases outlive the topics' retention: a case opened 30 days before a restart
is still there after the notice that opened it was deleted from ``centre-notices``."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas.contracts.events import BEIJING
from streams import topics
from streams.app import Stack
from streams.dispatch.desk import DispatchDesk
from tests.helpers import COMMUNITY, grid_report
from tests.integration.conftest import on_kafka
from tests.integration.test_walking_skeleton import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
SHORT = {"retention.ms": "500", "segment.ms": "200"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def log_start(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return (await consumer.beginning_offsets([tp]))[tp]
    finally:
        await consumer.stop()


@pytest.mark.timeout(300)
async def test_a_case_opened_30_days_ago_survives_a_restart_after_retention_took_its_notice(tmp_path, kafka):
    opened = datetime.now(BEIJING) - timedelta(days=30)
    clock = Clock(opened)
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-desk-state",
                        supervision_tick=0.2)
    async with Stack(settings, clock=clock) as stack:
        producer = stack.cluster.producer(acks="all")
        await producer.start()
        for n in (1, 2, 3):
            report = grid_report(n, at=opened - timedelta(minutes=10 - n))
            await producer.send_and_wait(topics.GRID_REPORTS.name, json.dumps(report, ensure_ascii=False).encode(),
                                         key=report["grid_code"].encode())
        [notice] = [r for r in await read_topic(stack.bootstrap_servers, topics.CENTRE_NOTICES.name, 3)
                    if r.key == COMMUNITY.encode() and json.loads(r.value)["rule_id"] == "dispute_cluster"]
        signal_id = json.loads(notice.value)["signal_id"]
        async with asyncio.timeout(30):
            while signal_id not in stack.desk.cases:
                await asyncio.sleep(0.2)
        old_desk = stack.desk
        await old_desk.stop()

        # The followed topics keep half a second now: the notice that opened the case goes.
        admin = stack.cluster.admin()
        await admin.start()
        try:
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t.name, SHORT)
                                       for t in (topics.CENTRE_NOTICES, topics.DISPATCH_ACTIONS)])
        finally:
            await admin.close()
        where = TopicPartition(topics.CENTRE_NOTICES.name, notice.partition)
        async with asyncio.timeout(60):
            while await log_start(stack.bootstrap_servers, where) <= notice.offset:
                await asyncio.sleep(0.5)  # a later record rolls the segment, so the old one can be deleted
                await producer.send_and_wait(where.topic, notice.value, key=notice.key, partition=where.partition)
        await producer.stop()

        clock.now = opened + timedelta(days=30)
        again = DispatchDesk(stack.cluster, old_desk.pseudonymiser, stack.metrics, clock, tick=0.2,
                             app_id=settings.app_id)
        forgetful = DispatchDesk(stack.cluster, old_desk.pseudonymiser, stack.metrics, clock, tick=60,
                                 app_id="fq-desk-without-state")
        await again.start()
        await forgetful.start()
        try:
            assert signal_id in again.cases, "kept on the desk's state topic"
            assert again.cases[signal_id].handler == COMMUNITY
            assert again.cases[signal_id].ack_due == old_desk.cases[signal_id].ack_due
            assert signal_id not in forgetful.cases, "the topics alone no longer hold it"
        finally:
            await forgetful.stop()
            await again.stop()
