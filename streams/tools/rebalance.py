"""Rebalance recovery (再均衡恢复): what a worker pays for its partitions when a second one joins.

On one Apache Kafka node, N grid reports are validated by one ``fengqiao worker`` process, whose
validate step then holds N ids in its 去重 state (``seen-grid-reports``, changelog-backed). A
second worker joins the group. The first is given back part of what it held and keeps it as it
was; the seconds until those partitions resume are read from its log. The baseline, in the same
process and minute: rebuilding the same partitions from their changelogs, which is what every
assignment did before the runner kept partitions (issue 16). The joiner's rebuild of what it
was given, which no design avoids, is reported beside them.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from streams import topics
from streams.runtime import state
from streams.runtime.kafka import Cluster
from streams.runtime.kraft import KRaftCluster
from streams.runtime.topics import drained, ensure_topics
from streams.tools.bench import append_row, produce_reports, progress, stamp
from streams.tools.processes import WorkerProcess
from streams.worker import validate
from streams.worker.pipeline import groups

GROUP = "bench-rebalance"
STEP = "validate"
HOLDS = re.compile(rf"{STEP} holds (?P<tps>[^:]+): (?P<kept>\d+) kept as they were, "
                   r"(?P<rebuilt>\d+) rebuilt from their changelogs in (?P<seconds>[\d.]+)s")


def holdings(log: Path, after: int) -> list[re.Match[str]]:
    """The step's "holds" lines written to ``log`` after byte ``after``."""
    with log.open(errors="replace") as f:
        f.seek(after)
        return list(HOLDS.finditer(f.read()))


async def next_holding(log: Path, after: int, timeout: float) -> re.Match[str]:
    """The first "holds" line after byte ``after``, waited for."""
    deadline = time.monotonic() + timeout
    while not (found := holdings(log, after)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no '{STEP} holds' line in {log} within {timeout:.0f}s")
        await asyncio.sleep(0.2)
    return found[0]


def partitions(line: re.Match[str]) -> list[TopicPartition]:
    return [TopicPartition(t, int(p)) for t, p in (tp.rsplit("/", 1) for tp in line["tps"].split(", "))]


async def rebuild(cluster: Cluster, tps: list[TopicPartition]) -> tuple[float, int]:
    """The baseline: the step's tables for ``tps`` rebuilt from their changelogs, as the worker
    rebuilds its own. Returns seconds and records read."""
    seen, known = validate.state_tables(GROUP)
    tables = [*seen.values(), known]
    started = time.perf_counter()
    read = await state.recover(cluster, [(t, tp.partition) for tp in tps for t in tables if t.source.name == tp.topic])
    return time.perf_counter() - started, read


async def measure(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rebalance-") as tmp, KRaftCluster(Path(tmp) / "kafka") as broker:
        cluster = broker.cluster()
        await ensure_topics(cluster, topics.ALL)
        progress(f"putting {n} simulated grid reports on Apache Kafka; one worker validates them")
        await produce_reports(cluster, n)
        first, second = (WorkerProcess(cluster, Path(tmp) / name, GROUP, log_level="INFO") for name in ("a", "b"))
        try:
            await asyncio.to_thread(first.start)
            if await drained(cluster, groups(GROUP), 900) is None:
                raise RuntimeError("the first worker did not drain its backlog within 900 s")
            log_a, log_b = first.data_dir / "worker.log", second.data_dir / "worker.log"
            mark = log_a.stat().st_size
            progress("a second worker joins")
            await asyncio.to_thread(second.start)
            kept = await next_holding(log_a, mark, 120)
            joined = await next_holding(log_b, 0, 120)
            if int(kept["rebuilt"]):
                raise RuntimeError(f"the first worker rebuilt partitions it was given back: {kept[0]}")
            progress(f"  first worker: {kept[0]}\n  joiner: {joined[0]}\nbaseline: the same partitions rebuilt")
            before, read = await rebuild(cluster, partitions(kept))
            progress(f"  {read} state records in {before:.2f}s")
        finally:
            first.stop()
            second.stop()
    after = float(kept["seconds"])
    return {"events": n, "state_records": read, "kept": int(kept["kept"]), "kept_s": after,
            "rebuilt_s": round(before, 3), "ratio": round(after / before, 4) if before else None,
            "joiner_rebuilt": int(joined["rebuilt"]), "joiner_s": float(joined["seconds"])}


HEADER = ("| date (UTC) | machine | command | state records kept | partitions kept | kept in s (now) "
          "| rebuilt in s (before) | ratio | joiner rebuilt | joiner s |")


def run(n: int, write: bool) -> dict[str, Any]:
    result = asyncio.run(measure(n))
    if write:
        date, machine = stamp()
        append_row(Path("BENCHMARKS.md"), HEADER,
                   f"| {date} | {machine} | `fengqiao bench --rebalance --events {n}` | {result['state_records']} | "
                   f"{result['kept']} | {result['kept_s']} | {result['rebuilt_s']} | {result['ratio']} | "
                   f"{result['joiner_rebuilt']} | {result['joiner_s']} |",
                   "## Rebalance recovery\n\nA second worker joins one that holds the 去重 state of N grid reports "
                   "(Apache Kafka, one node): the seconds until the first worker's partitions given back resume "
                   "(kept as they were), against rebuilding the same partitions from their changelogs in the same "
                   "process and minute (what every assignment did before); the joiner's own rebuild beside them.")
    return result
