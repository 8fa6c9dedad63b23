"""No personal identifier in the logs of a full run at the most verbose level."""

from __future__ import annotations

import subprocess

import pytest

from streams.intake.identity import valid_id_number
from streams.tools.simulator import GIVEN, SURNAMES
from tests.helpers import ID_NUMBER, MOBILE
from tests.integration.test_up_command import FENGQIAO, env_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("broker", ["kafka", "tansu"])
def test_a_debug_run_logs_no_identifier(tmp_path, broker):
    env = env_for(tmp_path) | {"FENGQIAO_LOG_LEVEL": "DEBUG", "FENGQIAO_BROKER": broker}
    done = subprocess.run([FENGQIAO, "up", "--simulate", "--duration", "15", "--rate", "20"], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = done.stdout + done.stderr
    assert logs.count("DEBUG") > 100  # it did log verbosely
    assert "新信号" in logs  # and the simulated reports made signals: their people passed through
    leaked = {m for m in ID_NUMBER.findall(logs) if valid_id_number(m)} | set(MOBILE.findall(logs))
    leaked |= {s + g for s in SURNAMES for g in GIVEN if s + g in logs}
    assert not leaked, sorted(leaked)[:10]
