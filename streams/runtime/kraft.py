"""A local Apache Kafka (KRaft): the broker production runs, fetched and started by fengqiao itself.

The broker's jars come from Maven Central through the project's own pom (``deploy/kafka/pom.xml``,
which pins the version), copied once into a cache outside the tree
(``~/.cache/fengqiao/kafka-<version>``, or ``FENGQIAO_KAFKA_CACHE``), so a second run fetches
nothing. Each node is one JVM process in combined mode (broker and controller), with its own
ports and log directory, formatted with the storage tool before its first start; a cluster of
three is three such processes voting among themselves. Like the embedded broker, every node dies
with the process that started it (PR_SET_PDEATHSIG), and runs in a session of its own.

The tests use it for one broker and for a three-broker cluster (replication 3, min ISR 2); the
drills kill, pause and restart its nodes; ``fengqiao up --broker kafka`` keeps one under the data
directory, so that a demo keeps its topics across restarts.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from streams.runtime.broker import die_with_parent, free_port
from streams.runtime.kafka import Cluster
from streams.runtime.topics import Topology

log = logging.getLogger(__name__)

POM = Path(__file__).parents[2] / "deploy" / "kafka" / "pom.xml"
READY = "Kafka Server started"
HEAP = "-Xmx384m"  # per node: enough for the tests' and the demo's volumes; three fit beside the worker


def kafka_version(pom: Path = POM) -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text("utf-8"))
    if not match:
        raise ValueError(f"{pom}: no <kafka.version>")
    return match[1]


def cache_root() -> Path:
    return Path(os.environ.get("FENGQIAO_KAFKA_CACHE") or Path.home() / ".cache" / "fengqiao")


def jars(pom: Path = POM, cache: Path | None = None) -> Path:
    """The directory of the broker's jars, fetched by Maven the first time (under a lock, so two
    processes starting at once fetch once)."""
    if not pom.exists():
        raise FileNotFoundError(f"{pom} not found: Apache Kafka runs from a checkout of fengqiao (deploy/kafka)")
    root = cache or cache_root()
    target = root / f"kafka-{kafka_version(pom)}"
    if (target / ".complete").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        partial = root / f".{target.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise FileNotFoundError("Apache Kafka needs Maven (mvn) and Java 17 to fetch and run the broker")
        log.warning("fetching Apache Kafka %s from Maven Central into %s", kafka_version(pom), target)
        done = subprocess.run([mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                               f"-DoutputDirectory={partial}"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"mvn could not fetch Apache Kafka:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        (target / ".complete").touch()
    return target


@dataclass
class Node:
    """One Kafka process: broker and controller."""

    node_id: int
    directory: Path
    port: int
    controller_port: int
    process: subprocess.Popen[bytes] | None = None
    mark: int = 0  # the size of its log when last started: "started" is looked for after it

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class KRaftCluster:
    """``nodes`` Apache Kafka processes on 127.0.0.1, each with its own ports and directory under
    ``directory``. With ``nodes`` of 3, topics are created with 3 copies and 2 in sync by default."""

    directory: Path
    nodes: int = 1
    settings: dict[str, str] = field(default_factory=dict)  # more broker settings
    members: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if not self.members:
            self.members = [self._node(i) for i in range(1, self.nodes + 1)]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.members)

    def cluster(self) -> Cluster:
        """Clients for this cluster: its replication, and a short session for a local group."""
        return Cluster(self.bootstrap_servers, topology=Topology(1, self.replication), session_timeout=6.0)

    @property
    def replication(self) -> int:
        return min(3, len(self.members))

    @property
    def min_insync(self) -> int:
        return 2 if len(self.members) >= 3 else 1

    def _node(self, node_id: int) -> Node:
        """A node, with the ports it had before when its directory is kept (a demo's broker)."""
        directory = self.directory / f"node-{node_id}"
        known = directory / "server.properties"
        if known.exists():
            text = known.read_text("utf-8")
            port = int(re.search(r"^listeners=PLAINTEXT://127\.0\.0\.1:(\d+)", text, re.M)[1])  # type: ignore[index]
            controller = int(re.search(r"CONTROLLER://127\.0\.0\.1:(\d+)", text)[1])  # type: ignore[index]
            return Node(node_id, directory, port, controller)
        return Node(node_id, directory, free_port(), free_port())

    # -- configuration ----------------------------------------------------------------------
    def _write_properties(self, node: Node) -> None:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.members)
        values = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.directory / "data"),
            "offsets.topic.replication.factor": str(self.replication),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": str(self.min_insync),
            "default.replication.factor": str(self.replication),
            "min.insync.replicas": str(self.min_insync),
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            "log.flush.interval.messages": "10000",
            "share.coordinator.state.topic.replication.factor": str(self.replication),
            "share.coordinator.state.topic.min.isr": str(self.min_insync),
            **self.settings,
        }
        node.directory.mkdir(parents=True, exist_ok=True)
        node.properties.write_text("".join(f"{k}={v}\n" for k, v in values.items()), "utf-8")
        (node.directory / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, file\n"
            "log4j.logger.kafka.request.logger=WARN\nlog4j.logger.org.apache.kafka.clients=WARN\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={node.log_path}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n", "utf-8")

    def _java(self, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise FileNotFoundError("Apache Kafka needs Java 17 (java on the PATH)")
        return [java, HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                "-cp", f"{jars()}/*", *args]

    def _format(self, cluster_id: str) -> None:
        for node in self.members:
            if (node.directory / "data" / "meta.properties").exists():
                continue
            self._write_properties(node)
            done = subprocess.run(self._java("-Dlog4j.configuration=file:" + str(node.directory / "log4j.properties"),
                                             "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                                             "-c", str(node.properties)), capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed for node {node.node_id}: {done.stdout}{done.stderr}")

    # -- life --------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """Format what is new, start every node, and wait until each says it has started."""
        self.directory.mkdir(parents=True, exist_ok=True)
        id_file = self.directory / "cluster.id"
        if not id_file.exists():
            id_file.write_text(_cluster_id(), "utf-8")
        self._format(id_file.read_text("utf-8").strip())
        for node in self.members:
            self._write_properties(node)  # the same ports, any settings changed since
            self._launch(node)
        for node in self.members:
            self._wait(node, timeout)

    def _launch(self, node: Node) -> None:
        node.mark = node.log_path.stat().st_size if node.log_path.exists() else 0
        out = open(node.directory / "stdout.log", "ab")
        try:
            node.process = subprocess.Popen(
                self._java("-Dlog4j.configuration=file:" + str(node.directory / "log4j.properties"),
                           "-Dlog4j2.configurationFile=none", "kafka.Kafka", str(node.properties)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent, start_new_session=True)
        finally:
            out.close()

    def _wait(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.process is None or node.process.poll() is not None:
                raise RuntimeError(f"Kafka node {node.node_id} exited: see {node.directory / 'stdout.log'}")
            if node.log_path.exists():
                with node.log_path.open(errors="replace") as f:
                    f.seek(node.mark)
                    if READY in f.read():
                        try:
                            socket.create_connection(("127.0.0.1", node.port), timeout=0.5).close()
                            log.info("Apache Kafka node %s on %s (pid %s)", node.node_id, node.address,
                                     node.process.pid)
                            return
                        except OSError:
                            pass
            time.sleep(0.1)
        raise TimeoutError(f"Kafka node {node.node_id} did not start within {timeout}s: see {node.log_path}")

    @property
    def alive(self) -> bool:
        return all(n.alive for n in self.members)

    def stop(self, timeout: float = 30.0) -> None:
        for node in self.members:
            if node.alive:
                node.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]  # a paused node stops too
                node.process.terminate()  # type: ignore[union-attr]
        for node in self.members:
            if node.process is not None:
                try:
                    node.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()

    # -- failures, for the drills ----------------------------------------------------------------
    def kill(self, node: Node) -> None:
        """SIGKILL: the node dies as a crashed machine would, nothing flushed."""
        assert node.process is not None
        node.process.kill()
        node.process.wait()

    def restart(self, node: Node, timeout: float = 90.0) -> None:
        self._launch(node)
        self._wait(node, timeout)

    def pause(self, node: Node) -> None:
        """SIGSTOP: the node stays connected and answers nothing, as a machine that hangs."""
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)

    def resume(self, node: Node) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> KRaftCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_id() -> str:
    """A cluster id as the storage tool makes them: 16 random bytes, URL-safe base64, unpadded."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
