"""An incident that keeps matching updates its notices in place, at most once per repeat
interval, with the deadlines first given; it does not page again."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer

from schemas.contracts.signals import CentreNotice
from streams import topics
from streams.app import Stack
from tests.helpers import COMMUNITY, T0, grid_report
from tests.integration.conftest import on_kafka
from tests.integration.test_dispatch_loop import Clock
from tests.integration.test_walking_skeleton import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_more_evidence_updates_the_notice_once_per_repeat_interval(tmp_path, kafka):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-updates")
    clock = Clock(T0)
    async with Stack(settings, gateway=False, clock=clock) as stack:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
        await producer.start()

        async def report(n: int) -> None:
            body = json.dumps(grid_report(n), ensure_ascii=False).encode()
            await producer.send_and_wait(topics.GRID_REPORTS.name, body, key=COMMUNITY.encode())
            assert await stack.drain(timeout=30)

        try:
            for n in (1, 2, 3):
                await report(n)
            clock.now = T0 + timedelta(minutes=10)
            await report(4)  # within the repeat interval: the signal is updated, the notices are not
            clock.now = T0 + timedelta(minutes=40)
            await report(5)  # past it: the notices are updated in place
        finally:
            await producer.stop()
        records = await read_topic(stack.bootstrap_servers, topics.CENTRE_NOTICES.name, 1)
        notices = [CentreNotice.model_validate_json(r.value) for r in records]
        cluster = sorted((n for n in notices if n.rule_id == "dispute_cluster"), key=lambda n: (n.is_update, n.centre_code))
        assert [(n.centre_code, n.is_update) for n in cluster] == [
            (COMMUNITY[:9], False), (COMMUNITY, False), (COMMUNITY[:9], True), (COMMUNITY, True)]
        first, update = cluster[1], cluster[3]
        assert update.notice_id == first.notice_id and update.signal_version > first.signal_version
        assert (update.ack_due, update.close_due) == (first.ack_due, first.close_due)
        assert update.created_at == T0 + timedelta(minutes=40)
        stored = stack.store.query("SELECT is_update FROM fengqiao.notices FINAL WHERE centre_code = {c:String} "
                                   "AND rule_id = 'dispute_cluster'", {"c": COMMUNITY})
        assert stored == [{"is_update": True}]
