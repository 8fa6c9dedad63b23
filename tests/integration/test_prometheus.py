"""Every PromQL expression of the health dashboard, evaluated by a real Prometheus (Debian's)
that scraped a running worker fed by the city simulator, returns data."""

from __future__ import annotations

import asyncio
import math
import shutil
import socket
import subprocess

import aiohttp
import pytest

from streams.app import Stack
from streams.reports.dashboards import health_dashboard
from streams.tools.simulator import CitySimulator
from tests.integration.conftest import on_kafka

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(PROMETHEUS is None, reason="make test installs Debian's prometheus")
async def test_every_promql_panel_returns_data_from_a_real_prometheus(tmp_path, kafka):
    settings = on_kafka(kafka, data_dir=tmp_path / "data", gateway_port=0, metrics_port=0, app_id="fq-prometheus")
    async with Stack(settings) as stack:
        stop = asyncio.Event()
        simulator = CitySimulator(stack.cluster, rate=30, incident_every=2)
        feeding = asyncio.create_task(simulator.run(stop, first_incident_after=0.5))
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: fengqiao-worker\n    static_configs: [{{targets: ['127.0.0.1:{stack.metrics_port}']}}]\n")
        assert subprocess.run(["promtool", "check", "config", str(config)], capture_output=True).returncode == 0
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(20)  # enough scrapes for every rate() to have two samples with traffic between
            results = {}
            async with aiohttp.ClientSession() as http:
                for panel in health_dashboard().panels:
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": panel.query}) as r:
                        body = await r.json()
                    assert body["status"] == "success", (panel.title, body)
                    values = [float(s["value"][1]) for s in body["data"]["result"]]
                    results[panel.title] = values
            empty = [t for t, v in results.items() if not v or any(math.isnan(x) for x in v)]
            assert not empty, {t: results[t] for t in empty}
            assert max(results["Events in per second, by topic"]) > 0
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)
            stop.set()
            await feeding
