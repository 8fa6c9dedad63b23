"""A step that fails keeps nothing it did not finish, and one that cannot go on stops the process.

A batch whose outputs cannot be sent is not committed: its partition is read again, over state
rebuilt from the changelog, and the signal comes (and is counted) once the fault is gone. A step that cannot even
start over reports the process unhealthy (/healthz 503) and the stack stops, for its supervisor
to restart it, rather than running on without it.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from schemas.contracts.signals import RiskSignal
from streams import topics
from streams.app import Stack
from streams.runtime.outbox import Outbox
from tests.helpers import COMMUNITY, grid_report
from tests.integration.conftest import on_kafka
from tests.integration.test_ingestion import read_all
from tests.integration.test_restart import publish

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_a_batch_whose_outputs_fail_is_read_again_and_nothing_is_lost(tmp_path, monkeypatch, kafka):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-failing")
    async with Stack(settings, gateway=False) as stack:
        await publish(stack.bootstrap_servers, grid_report(1), grid_report(2))
        assert await stack.drain(timeout=60)
        real_send, failures = Outbox.send, []

        async def flaky(self: Outbox) -> None:  # the broker refuses the correlate step's outputs twice
            if any(topic == topics.SIGNALS.name for topic, _ in self._open) and len(failures) < 2:
                failures.append(1)
                raise RuntimeError("produce refused")
            await real_send(self)

        monkeypatch.setattr(Outbox, "send", flaky)
        await publish(stack.bootstrap_servers, grid_report(3))
        assert await stack.drain(timeout=60)
        assert len(failures) == 2 and stack.alive()
        signals = [RiskSignal.model_validate_json(r.value) for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)]
        cluster = [s for s in signals if s.rule_id == "dispute_cluster"]
        assert [s.entity for s in cluster] == [COMMUNITY]  # raised once, after the refusals, not lost
        m = stack.metrics  # and counted once: what a refused batch raised was never announced
        assert m.total(m.signals, rule="dispute_cluster", kind="new") == 1
        assert sorted(e.uid for e in cluster[0].evidence) == ["grid:t-000001", "grid:t-000002", "grid:t-000003"]


async def test_a_step_that_cannot_start_over_stops_the_stack_and_fails_its_health(tmp_path, monkeypatch, kafka):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-broken")
    async with Stack(settings, gateway=False) as stack:
        runner = stack.pipeline.runner("correlate")

        async def broken(*_: object) -> None:
            raise RuntimeError("a defect")

        monkeypatch.setattr(runner.step, "process", broken)
        monkeypatch.setattr(runner, "_start_over", broken)
        await publish(stack.bootstrap_servers, grid_report(1))
        await stops_unhealthy(stack)


async def stops_unhealthy(stack: Stack, timeout: float = 60) -> None:
    """The stack's watch stops it, and its /healthz answers 503."""
    stop = asyncio.Event()
    await asyncio.wait_for(stack.watch(stop), timeout=timeout)
    assert stop.is_set() and not stack.alive()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{stack.metrics_port}/healthz") as r:
            assert r.status == 503
