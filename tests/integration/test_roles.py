"""The two processes a deployment runs, on one Kafka: ``fengqiao worker`` and ``fengqiao gateway``,
each with the liveness and readiness probes and the metrics an orchestrator reads."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from streams.api.keys import KeyStore
from tests.integration.conftest import new_kafka
from tests.integration.test_restart import FENGQIAO

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def start(role: str, bootstrap: str, tmp_path: Path) -> tuple[subprocess.Popen, Path, dict[str, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FENGQIAO_")}
    env.update(FENGQIAO_KAFKA_BOOTSTRAP_SERVERS=bootstrap, FENGQIAO_DATA_DIR=str(tmp_path / "data"),
               FENGQIAO_APP_ID="fq-roles", FENGQIAO_KAFKA_SESSION_TIMEOUT="3", FENGQIAO_METRICS_PORT="0",
               FENGQIAO_GATEWAY_PORT="0")
    log = tmp_path / f"{role}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([FENGQIAO, role], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text(errors="replace")
        if f"fengqiao {role} ready" in text:
            ports = {name: int(m[1]) for name, pattern in (("metrics", r"metrics http://127\.0\.0\.1:(\d+)"),
                                                             ("http", r"ready: http://127\.0\.0\.1:(\d+)"))
                     if (m := re.search(pattern, text))}
            return proc, log, ports
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{role} did not become ready:\n" + log.read_text(errors="replace")[-3000:])


async def get(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(url) as r:
            return r.status, await r.text()


async def test_a_worker_and_a_gateway_run_apart_with_their_probes(tmp_path):
    (tmp_path / "data").mkdir()
    _, token = KeyStore(tmp_path / "data" / "api-keys.json").add("centre:210202")
    with new_kafka(tmp_path / "kafka") as broker:
        procs = []
        try:
            for role in ("worker", "gateway"):
                proc, log, ports = start(role, broker.bootstrap_servers, tmp_path)
                procs.append((proc, log))
                base = f"http://127.0.0.1:{ports['metrics']}"
                assert (await get(f"{base}/healthz"))[0] == 200
                assert (await get(f"{base}/readyz"))[0] == 200
                status, text = await get(f"{base}/metrics")
                assert status == 200 and "fengqiao_events_in" in text
            status, body = await get(f"http://127.0.0.1:{ports['http']}/v1/centres/210202/cases",
                                     Authorization=f"Bearer {token}")
            assert status == 200 and '"cases": []' in body
        finally:
            for proc, log in procs:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]
