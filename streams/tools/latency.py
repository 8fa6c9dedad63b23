"""Event-to-notice latency and worker memory at fixed loads (``fengqiao bench --loads``).

A ``fengqiao worker`` process runs on a fresh embedded broker. For each load (events per second)
the city simulator feeds grid reports, with a dispute cluster every second so that notices keep
coming, for a fixed time; a consumer beside it reads the ``signals`` and ``centre-notices``
topics, and each notice's latency is the moment it is read minus the event time of the latest
evidence of its signal (the report that completed the pattern: the simulator stamps reports as
it sends them). The worker's resident memory is sampled throughout. After each load, a raw
aiokafka consume-and-parse loop reads every report fed, the same-run baseline for the rate the
worker achieved. Each load has a broker and worker of its own, so none inherits a backlog.

A load above what the worker processes builds a backlog: its latency then grows with the length
of the run, and the figure reported says so (the rate achieved, and the backlog at the end).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from schemas.contracts.events import BEIJING
from streams import topics
from streams.runtime.broker import EmbeddedBroker
from streams.runtime.kafka import Cluster
from streams.runtime.topics import drained, end_offsets, ensure_topics, group_lag
from streams.tools.bench import append_row, progress, raw_consume, stamp
from streams.tools.processes import WorkerProcess
from streams.tools.simulator import CitySimulator
from streams.worker.pipeline import groups

GROUP = "bench-loads"
HOPS = groups(GROUP, ("validate", "correlate"))  # each report is one event on both


class NoticeClock:
    """Reads signals and notices as they come; a notice's latency from its signal's latest evidence."""

    def __init__(self, cluster: Cluster) -> None:
        self.consumer = cluster.consumer(enable_auto_commit=False)
        self.cluster = cluster
        self.latest_evidence: dict[tuple[str, int], datetime] = {}
        self.latencies: list[float] = []
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.consumer.start()
        tps = self.cluster.topic_partitions(topics.SIGNALS, topics.CENTRE_NOTICES)
        self.consumer.assign(tps)
        for tp, end in (await end_offsets(self.consumer, tps, self.cluster.tansu)).items():
            self.consumer.seek(tp, end)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                now = datetime.now(BEIJING)
                for r in records:
                    doc = orjson.loads(r.value)
                    if r.topic == topics.SIGNALS.name:
                        times = [datetime.fromisoformat(e["occurred_at"]) for e in doc.get("evidence", [])]
                        if times:
                            self.latest_evidence[(doc["signal_id"], doc["version"])] = max(times)
                    elif (t := self.latest_evidence.get((doc["signal_id"], doc["signal_version"]))) is not None:
                        self.latencies.append((now - t).total_seconds())

    def take(self) -> list[float]:
        taken, self.latencies = self.latencies, []
        return taken

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.consumer.stop()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def one_load(rate: float, seconds: float, seed: int, drain_limit: float = 120.0) -> dict[str, Any]:
    """One load on a fresh broker and worker, so that no load inherits another's backlog."""
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="fq-loads-") as tmp:
        cluster = broker.cluster()
        await ensure_topics(cluster, topics.ALL)
        worker = WorkerProcess(cluster, Path(tmp), GROUP)
        worker.start()
        clock = NoticeClock(cluster)
        await clock.start()
        sampling = asyncio.create_task(_sample(worker))
        try:
            sim = CitySimulator(cluster, rate=rate, seed=seed, incident_every=1.0)
            began = time.monotonic()
            await sim.run(first_incident_after=0.5, seconds=seconds)
            offered = sim.sent / (time.monotonic() - began)
            # each report is one event: what is left is what waits to be validated or correlated and stored
            backlog = await group_lag(cluster, HOPS)
            drained_after = await drained(cluster, HOPS, drain_limit)
            left = 0 if drained_after is not None else await group_lag(cluster, HOPS)
            drained_after = drain_limit if drained_after is None else drained_after
            await asyncio.sleep(1.0)  # the last notices on their way
        finally:
            sampling.cancel()
            await clock.stop()
            worker.stop()
        progress(f"  baseline: raw aiokafka consume-and-parse loop over the {sim.sent:,} reports fed")
        raw = await raw_consume(cluster, sim.sent)
    latencies = clock.take()
    processed_per_s = (sim.sent - left) / (seconds + drained_after)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return {"load": rate, "offered_per_s": round(offered), "events": sim.sent, "notices": len(latencies),
            "p50_s": None if p50 is None else round(p50, 3), "p99_s": None if p99 is None else round(p99, 3),
            "backlog_at_end": backlog, "left_after_drain": left, "drained_after_s": round(drained_after, 1),
            "processed_per_s": round(processed_per_s), "raw_per_s": round(raw),
            "ratio_to_raw": round(processed_per_s / raw, 4), "peak_rss_mib": round(worker.peak_rss_kb / 1024)}


async def _sample(worker: WorkerProcess) -> None:
    while True:
        worker.sample_rss(current=True)
        await asyncio.sleep(0.25)


async def loads(rates: tuple[float, ...], seconds: float) -> list[dict[str, Any]]:
    results = []
    for n, rate in enumerate(rates):
        progress(f"load {rate:,.0f} events/s for {seconds:.0f} s")
        results.append(await one_load(rate, seconds, seed=100 + n))
        progress(f"  {results[-1]}")
    return results


LOADS_HEADER = ("| date (UTC) | machine | command | load /s | offered /s | processed /s | ratio to raw | "
                "notices | p50 s | p99 s | backlog at end | peak RSS MiB |")


def record(results: list[dict[str, Any]], command: str, path: Path = Path("BENCHMARKS.md")) -> None:
    """One line per load in BENCHMARKS.md with the command, the machine and the date."""
    date, machine = stamp()
    for r in results:
        append_row(path, LOADS_HEADER,
                   f"| {date} | {machine} | `{command}` | {r['load']:.0f} | {r['offered_per_s']} | "
                   f"{r['processed_per_s']} | {r['ratio_to_raw']} | {r['notices']} | {r['p50_s']} | {r['p99_s']} | "
                   f"{r['backlog_at_end']} | {r['peak_rss_mib']} |",
                   "## Latency and memory at fixed loads\n\nEvent-to-notice latency (notice read minus the event "
                   "time of its signal's latest evidence), one worker process; processed /s over the load and the "
                   "drain after it, and its ratio to a raw aiokafka consume-and-parse loop over the same reports "
                   "in the same run.")
