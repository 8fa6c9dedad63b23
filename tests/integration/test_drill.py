"""``fengqiao drill --quick``, the short form of ``make drill``: every scenario runs against the real
parts, on three Apache Kafka nodes, and nothing sent is lost or stored twice."""

from __future__ import annotations

import os
import subprocess

import pytest

from streams.tools.drill import SCENARIOS
from tests.integration.test_up_command import FENGQIAO

pytestmark = pytest.mark.integration


ROWS = {"crash", "store outage", "burst", "hostile input", "webhooks failing", "broker killed", "broker paused",
        "workers moved"}


@pytest.mark.timeout(1500)  # eight scenarios, each on three Kafka nodes of its own: about 8 minutes here
def test_every_drill_on_apache_kafka_loses_nothing_and_doubles_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FENGQIAO_")}
    done = subprocess.run([FENGQIAO, "drill", "--quick"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.split("  ")[0].strip() in ROWS]
    assert len(rows) == len(SCENARIOS) == len(ROWS)
    assert all(" pass " in row for row in rows), done.stdout
