"""The deployment's topology comes from the Settings a stack is given, never from the environment."""

from __future__ import annotations

import pytest

from streams import topics
from streams.app import Stack
from tests.integration.conftest import on_kafka

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_a_stack_at_partition_scale_two_creates_twice_the_partitions(tmp_path, monkeypatch, kafka):
    monkeypatch.delenv("FENGQIAO_PARTITION_SCALE", raising=False)  # the scale is the Settings' alone
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-scale", partition_scale=2)
    async with Stack(settings, gateway=False) as stack:
        assert stack.pipeline is not None and stack.cluster is not None
        producer = stack.pipeline.producer
        for spec in topics.ALL:
            assert len(await producer.partitions_for(spec.name)) == 2 * spec.base_partitions, spec.name
        for table in stack.pipeline.tables:  # the state changelogs beside them agree
            assert len(await producer.partitions_for(table.changelog)) == 2 * table.source.base_partitions
        assert stack.cluster.partitions(topics.EVENTS) == 16
