"""A ``fengqiao worker`` process on a tool's own broker, killable like a real one (the drills and
the fixed loads run the worker this way, so that a SIGKILL is a real crash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streams.runtime.kafka import Cluster

FENGQIAO = str(Path(sys.executable).with_name("fengqiao"))


class WorkerProcess:
    """A ``fengqiao worker`` process on the drill's broker, killable like a real one."""

    def __init__(self, cluster: Cluster, data_dir: Path, group: str, log_level: str = "WARNING") -> None:
        self.cluster, self.data_dir, self.group, self.log_level = cluster, data_dir, group, log_level
        self.proc: subprocess.Popen | None = None
        self.peak_rss_kb = 0

    def start(self) -> float:
        """Start one; returns the seconds until it is ready."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FENGQIAO_")}
        env.update(FENGQIAO_KAFKA_BOOTSTRAP_SERVERS=self.cluster.bootstrap_servers,
                   FENGQIAO_BROKER="tansu" if self.cluster.tansu else "kafka", FENGQIAO_DATA_DIR=str(self.data_dir),
                   FENGQIAO_APP_ID=self.group, FENGQIAO_KAFKA_SESSION_TIMEOUT=str(self.cluster.session_timeout),
                   FENGQIAO_KAFKA_REPLICATION_FACTOR=str(self.cluster.topology.replication),
                   FENGQIAO_METRICS_PORT="0", FENGQIAO_LOG_LEVEL=self.log_level)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "worker.log"
        started = time.monotonic()
        with log.open("a") as out:
            self.proc = subprocess.Popen([FENGQIAO, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)
        mark = log.stat().st_size
        while time.monotonic() - started < 120 and self.proc.poll() is None:
            with log.open(errors="replace") as f:
                f.seek(mark)
                if "fengqiao worker ready" in f.read():
                    return time.monotonic() - started
            time.sleep(0.2)
        raise RuntimeError("the worker did not start:\n" + log.read_text(errors="replace")[-2000:])

    def sample_rss(self, current: bool = False) -> None:
        """Keep the peak resident memory: the kernel's high-water mark, or (``current``) the
        resident size now, for peaks within a stretch of the run."""
        if self.proc and self.proc.poll() is None:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            field = "VmRSS" if current else "VmHWM"
            kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith(field))
            self.peak_rss_kb = max(self.peak_rss_kb, kb)

    def kill(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=90)
