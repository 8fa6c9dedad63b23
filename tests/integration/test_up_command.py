"""``fengqiao up`` as an operator runs it: a timed run's summary, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FENGQIAO = str(Path(sys.executable).with_name("fengqiao"))


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FENGQIAO_")}
    env.update(FENGQIAO_DATA_DIR=str(tmp_path / "data"), FENGQIAO_GATEWAY_PORT="0", FENGQIAO_METRICS_PORT="0")
    return env


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_timed_run_prints_a_json_summary_with_signals_notices_and_rows(tmp_path):
    result = subprocess.run([FENGQIAO, "up", "--simulate", "--duration", "20", "--json"],
                            env=env_for(tmp_path), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["signals"] > 0 and summary["notices"] > 0, summary
    rows = summary["clickhouse_rows"]
    assert rows["events"] > 0 and rows["signals"] > 0 and rows["notices"] > 0
    assert summary["drained"] is True
    assert summary["events_in"] == summary["events_valid"] + summary["events_dlq"] == summary["simulated_reports"]
    assert rows["events"] == summary["events_valid"]
    assert "新信号" in result.stderr  # signals shown as they are raised


@contextmanager
def running_up(tmp_path: Path, *args: str, broker: str = "tansu") -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """``fengqiao up`` in a process group of its own, as a terminal runs it, once ready; killed
    on the way out if a test left it running."""
    proc = subprocess.Popen([FENGQIAO, "up", "--broker", broker, *args], env=env_for(tmp_path), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Ctrl-C stops" in line:
                break
        else:
            raise AssertionError("fengqiao up never became ready:\n" + "".join(seen))
        yield proc, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def finish(proc: subprocess.Popen, seen: list[str], timeout: float) -> str:
    """What ``fengqiao up`` printed until it exited; a stop that hangs fails with all of it."""
    try:
        rest, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, _ = proc.communicate()
        raise AssertionError(f"fengqiao up did not stop within {timeout} s:\n" + "".join(seen) + rest) from None
    return rest


@pytest.mark.parametrize("broker", ["tansu", "kafka"])
@pytest.mark.parametrize("how", ["SIGTERM to the process", "Ctrl-C to the process group"])
def test_stopping_leaves_no_process(tmp_path, how, broker):
    """A terminal's Ctrl-C reaches every process of the group at once, the broker included."""
    with running_up(tmp_path, "--simulate", broker=broker) as (proc, seen):
        children = descendants(proc.pid)
        assert children, "the embedded broker should be a child process"
        time.sleep(3)
        if how.startswith("SIGTERM"):
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        rest = finish(proc, seen, 60)
        assert proc.returncode == 0, "".join(seen) + rest
        assert "summary:" in rest
        time.sleep(0.2)
        assert [pid for pid in children if alive(pid)] == []


def test_sighup_reloads_the_rule_pack(tmp_path):
    with running_up(tmp_path) as (proc, seen):
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "rule pack reloaded" in line:
                break
        assert any("rule pack reloaded" in line for line in seen), "".join(seen)
        assert proc.poll() is None  # still running
        proc.send_signal(signal.SIGTERM)
        finish(proc, seen, 60)
        assert proc.returncode == 0


def test_a_dead_broker_stops_the_stack_with_a_clear_error(tmp_path):
    with running_up(tmp_path, "--simulate") as (proc, seen):
        [broker] = descendants(proc.pid)
        os.kill(broker, signal.SIGKILL)
        rest = finish(proc, seen, 90)
        assert proc.returncode == 1, "".join(seen) + rest
        assert "the broker it started exited" in rest


@pytest.mark.parametrize("broker", ["tansu", "kafka"])
def test_a_killed_stack_takes_its_broker_with_it(tmp_path, broker):
    with running_up(tmp_path, broker=broker) as (proc, seen):
        children = descendants(proc.pid)
        assert children
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in children if alive(pid)] == []


def test_a_demo_on_apache_kafka_keeps_its_topics_across_restarts(tmp_path):
    """``fengqiao up --broker kafka``: Apache Kafka under the data directory, kept when it stops."""
    first = subprocess.run([FENGQIAO, "up", "--broker", "kafka", "--simulate", "--duration", "10", "--json"],
                           env=env_for(tmp_path), capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stderr[-3000:]
    sent = json.loads(first.stdout)["simulated_reports"]
    assert "Apache Kafka under" in first.stderr
    again = subprocess.run([FENGQIAO, "up", "--broker", "kafka", "--duration", "3", "--json"],
                           env=env_for(tmp_path), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["events_in"] == 0, "nothing read twice: the groups' commits were kept with the topics"
    assert summary["clickhouse_rows"]["events"] == sent
    reports = subprocess.run([FENGQIAO, "sql", "--format", "json", "SELECT count() AS n FROM fengqiao.events"],
                             env=env_for(tmp_path), capture_output=True, text=True, timeout=120)
    assert json.loads(reports.stdout) == [{"n": sent}]
