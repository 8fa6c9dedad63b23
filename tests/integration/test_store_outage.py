"""ClickHouse refuses for a while: the sink pauses its partitions, acknowledges nothing, retries
with backoff, and when ClickHouse is back every event is stored exactly once. Meanwhile the
other steps go on: validation and correlation are not held up by the store."""

from __future__ import annotations

import asyncio
import json

import pytest

from streams import topics
from streams.app import Stack
from streams.runtime.topics import drained, group_lag
from streams.worker.pipeline import groups
from tests.helpers import grid_report
from tests.integration.conftest import on_kafka, produce

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

REPORTS = [grid_report(n, category="hazard.gas") for n in range(1, 21)]


async def until(predicate, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)


async def test_a_store_outage_pauses_the_sink_and_loses_nothing(tmp_path, kafka):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-outage")
    async with Stack(settings) as stack:
        store, metrics, sink = stack.store, stack.metrics, stack.pipeline.runner("sink-events")
        await store.run(store.execute, "DETACH TABLE fengqiao.events")  # the table is gone: inserts fail
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                      [(r["grid_code"].encode(), json.dumps(r, ensure_ascii=False).encode()) for r in REPORTS])

        await until(lambda: metrics.total(metrics.sink_retries, table="events") >= 3)
        assert {tp.topic for tp in sink.consumer.paused()} == {topics.EVENTS.name}
        uncommitted = await group_lag(stack.cluster, groups(settings.app_id, ["sink-events"]))
        assert uncommitted == len(REPORTS), "no event of a failed batch is acknowledged"
        assert metrics.total(metrics.sink_rows, table="events") == 0
        others = groups(settings.app_id, ["validate", "correlate"])
        assert await drained(stack.cluster, others, timeout=30) is not None, "the store holds up only its sink"
        assert not any(r.consumer.paused() for r in stack.pipeline.runners if r is not sink)

        await store.run(store.execute, "ATTACH TABLE fengqiao.events")  # ClickHouse is back
        assert await stack.drain(timeout=60)
        assert not sink.consumer.paused()
        assert store.count("events", final=False) == len(REPORTS)  # once each, even before merges
        assert store.query("SELECT uniqExactMerge(events) AS n FROM fengqiao.events_hourly") == [{"n": len(REPORTS)}]
