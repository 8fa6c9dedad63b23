"""Window state survives a worker killed inside a window (its changelog on the broker).

The broker runs in the test; a real ``fengqiao worker`` process takes two dispute reports of a
community, is killed with SIGKILL, and a new worker takes the third: the rule still fires, with
the signal id the first worker would have given it and all three reports as evidence.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas.contracts.signals import RiskSignal
from streams import topics
from streams.runtime.kafka import Cluster
from streams.runtime.topics import ensure_topics, group_lag
from streams.worker.pipeline import groups
from tests.helpers import COMMUNITY, T0, grid_report
from tests.integration.conftest import new_kafka
from tests.integration.test_ingestion import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
FENGQIAO = str(Path(sys.executable).with_name("fengqiao"))
GROUP = "fq-restart"
SESSION = 3  # seconds



def start_worker(bootstrap: str, data_dir: Path, log: Path) -> subprocess.Popen:
    """A worker writing to a log file (a pipe nobody reads would block it once full)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FENGQIAO_")}
    env.update(FENGQIAO_KAFKA_BOOTSTRAP_SERVERS=bootstrap, FENGQIAO_DATA_DIR=str(data_dir),
               FENGQIAO_APP_ID=GROUP, FENGQIAO_KAFKA_SESSION_TIMEOUT=str(SESSION), FENGQIAO_METRICS_PORT="0",
               FENGQIAO_LOG_LEVEL="INFO")
    with log.open("w") as out:
        proc = subprocess.Popen([FENGQIAO, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if "fengqiao worker ready" in log.read_text(errors="replace"):
            return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("worker did not become ready:\n" + log.read_text(errors="replace")[-3000:])


async def publish(bootstrap: str, *reports: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    for report in reports:
        await producer.send_and_wait(topics.GRID_REPORTS.name, json.dumps(report, ensure_ascii=False).encode(),
                                     key=report["grid_code"].encode())
    await producer.stop()


async def settled(bootstrap: str, timeout: float = 120) -> None:
    consumed = groups(GROUP, ["validate", "correlate"])
    async with asyncio.timeout(timeout):
        while await group_lag(Cluster(bootstrap), consumed):
            await asyncio.sleep(0.3)


async def test_the_rule_fires_after_a_worker_restart_with_the_same_signal_id(tmp_path):
    with new_kafka(tmp_path / "kafka") as broker:
        bootstrap = broker.bootstrap_servers
        await ensure_topics(Cluster(bootstrap), topics.ALL)
        first = await asyncio.to_thread(start_worker, bootstrap, tmp_path, tmp_path / "first.log")
        try:
            await publish(bootstrap, grid_report(1), grid_report(2))
            await settled(bootstrap)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert await read_all(bootstrap, topics.SIGNALS) == []
        # At once: Apache Kafka's coordinator expels the killed member when its session expires
        # and rebalances (tansu would not, so the drills on tansu wait for the session first).

        second = await asyncio.to_thread(start_worker, bootstrap, tmp_path, tmp_path / "second.log")
        try:
            await publish(bootstrap, grid_report(3))
            async with asyncio.timeout(120):
                records: list = []
                while not any(b'"dispute_cluster"' in r.value for r in records):
                    await asyncio.sleep(0.3)
                    records = await read_all(bootstrap, topics.SIGNALS)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
    [signal_] = [s for r in records if (s := RiskSignal.model_validate_json(r.value)).rule_id == "dispute_cluster"]
    first_event = grid_report(1)["occurred_at"]
    assert first_event == (T0.replace(minute=1)).isoformat()
    assert signal_.signal_id == RiskSignal.make_id("dispute_cluster", COMMUNITY, T0.replace(minute=1))
    assert sorted(e.uid for e in signal_.evidence) == ["grid:t-000001", "grid:t-000002", "grid:t-000003"]
