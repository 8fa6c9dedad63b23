"""Benchmarks (性能基准), reported as ratios against a baseline run in the same process and minute.

Throughput: N simulated grid reports are put on a fresh embedded broker; then a raw aiokafka
consume-and-parse loop reads them all (the baseline), and then the whole pipeline (validate,
correlate, route, and the ClickHouse sinks on chdb) processes the same messages. The pipeline
figure counts from the moment its worker holds its partitions to the moment the last event row
is in ClickHouse.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import topics
from streams.broker import EmbeddedBroker
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.ruleset import load_rules
from streams.simulator import CitySimulator
from streams.store import open_store


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def produce_reports(bootstrap: str, n: int, seed: int = 11) -> None:
    sim = CitySimulator(bootstrap, seed=seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for i in range(n):
            report = sim.incident()[0] if i % 50 == 0 else sim.background()
            await producer.send(topics.GRID_REPORTS.name, orjson.dumps(report), key=report["grid_code"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, n: int) -> float:
    """The baseline: aiokafka getmany and json parsing, nothing else. Returns events per second."""
    consumer = AIOKafkaConsumer(topics.GRID_REPORTS.name, bootstrap_servers=bootstrap, group_id="bench-raw",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10000)
            started = started or time.perf_counter()
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                seen += len(records)
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def pipeline_consume(bootstrap: str, n: int, data_dir: Path) -> float:
    """The whole pipeline into chdb. Returns events per second."""
    settings = Settings(data_dir=data_dir, kafka_bootstrap_servers=bootstrap, app_id="bench-pipeline",
                        kafka_session_timeout=3.0)  # the embedded broker's join waits this long
    store = open_store(settings)
    metrics = Metrics()
    pipeline = Pipeline(settings, bootstrap, store, load_rules(), metrics)
    try:
        await pipeline.start()
        started = time.perf_counter()
        while metrics.total(metrics.sink_rows, table="events") < n:
            await asyncio.sleep(0.02)
        return n / (time.perf_counter() - started)
    finally:
        await pipeline.stop()
        store.close()


async def throughput(n: int) -> dict[str, Any]:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        await topics.ensure_topics(broker.bootstrap_servers)
        progress(f"putting {n} simulated grid reports on the embedded broker")
        await produce_reports(broker.bootstrap_servers, n)
        progress("baseline: raw aiokafka consume-and-parse loop")
        raw = await raw_consume(broker.bootstrap_servers, n)
        progress(f"  {raw:,.0f} events/s; pipeline: validate, correlate, route, sinks into chdb")
        pipe = await pipeline_consume(broker.bootstrap_servers, n, Path(tmp))
        progress(f"  {pipe:,.0f} events/s")
    return {"events": n, "raw_per_s": round(raw), "pipeline_per_s": round(pipe), "ratio": round(pipe / raw, 4)}


def record(result: dict[str, Any], command: str, path: Path = Path("BENCHMARKS.md")) -> None:
    """Append one line to BENCHMARKS.md with the command, the machine and the date."""
    if not path.exists():
        path.write_text("# Benchmarks\n\nAppended by `make bench` (`fengqiao bench`). Ratios are against a raw "
                        "aiokafka consume-and-parse loop on the same broker, in the same process and minute.\n\n"
                        "| date (UTC) | machine | command | events | raw aiokafka /s | pipeline /s | ratio |\n"
                        "|---|---|---|---|---|---|---|\n")
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    with path.open("a") as f:
        f.write(f"| {date} | {machine} | `{command}` | {result['events']} | {result['raw_per_s']} | "
                f"{result['pipeline_per_s']} | {result['ratio']} |\n")


def run(n: int, write: bool) -> dict[str, Any]:
    result = asyncio.run(throughput(n))
    if write:
        record(result, f"fengqiao bench --events {n}")
    return result
