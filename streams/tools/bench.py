"""Benchmarks (性能基准), reported as ratios against a baseline run in the same process and minute.

Throughput: N simulated grid reports are put on a fresh embedded broker; then a raw aiokafka
consume-and-parse loop reads them all (the baseline), and then the whole pipeline (validate,
correlate, route, and the ClickHouse sinks on chdb) processes the same messages. The pipeline
figure counts from the moment its worker holds its partitions to the moment the last event row
is in ClickHouse.

Sink: normalised events, as the sink receives them (JSON from the ``events`` topic), inserted
into chdb by ``Store.insert`` (every row checked for the table's required columns, a
deduplication token) in batches of 1,000 and 10,000, alternating round by round with a bare
JSONEachRow insert of the same lines already joined, without check or token: the baseline.
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

from streams import topics
from streams.app import worker_pipeline
from streams.config import Settings
from streams.detection.ruleset import load_rules
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import Origin, Validator
from streams.metrics import Metrics
from streams.runtime.broker import EmbeddedBroker
from streams.runtime.kafka import Cluster
from streams.runtime.kraft import KRaftCluster
from streams.runtime.topics import ensure_topics
from streams.store.clickhouse import JSON_INSERT_SETTINGS, EmbeddedStore, migrate, open_store, sql_literal
from streams.tools.simulator import CitySimulator


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def produce_reports(cluster: Cluster, n: int, seed: int = 11) -> None:
    sim = CitySimulator(cluster, seed=seed)
    producer = cluster.producer(acks="all", linger_ms=20)
    await producer.start()
    try:
        for i in range(n):
            report = sim.incident()[0] if i % 50 == 0 else sim.background()
            await producer.send(topics.GRID_REPORTS.name, orjson.dumps(report), key=report["grid_code"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def raw_consume(cluster: Cluster, n: int) -> float:
    """The baseline: aiokafka getmany and json parsing, nothing else. Returns events per second."""
    consumer = cluster.consumer(topics.GRID_REPORTS.name, group_id="bench-raw", auto_offset_reset="earliest", enable_auto_commit=False)
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


async def pipeline_consume(cluster: Cluster, n: int, data_dir: Path) -> tuple[float, float, float]:
    """The whole pipeline into chdb. Returns events per second, and per event in µs the worker
    process's CPU time (all its threads, ClickHouse's included) and its event loop's (the one
    thread every step shares, which bounds the rate): steadier than the rate on a shared machine."""
    settings = Settings(data_dir=data_dir, kafka_bootstrap_servers=cluster.bootstrap_servers, app_id="bench-pipeline",
                        kafka_session_timeout=3.0)  # the embedded broker's join waits this long
    store = open_store(settings)
    metrics = Metrics()
    pipeline = worker_pipeline(settings, cluster, store, load_rules(), metrics)
    try:
        await pipeline.start()
        started, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
        while metrics.total(metrics.sink_rows, table="events") < n:
            await asyncio.sleep(0.2)  # every 20 ms, reading the metric took 5% of the process (py-spy)
        return (n / (time.perf_counter() - started), (time.process_time() - cpu) / n * 1e6,
                (time.thread_time() - loop_cpu) / n * 1e6)
    finally:
        await pipeline.stop()
        store.close()


async def throughput(n: int, broker_kind: str = "tansu") -> dict[str, Any]:
    """On a fresh broker: the embedded tansu, or Apache Kafka (one KRaft node) with ``kafka``."""
    with tempfile.TemporaryDirectory() as tmp, \
            (EmbeddedBroker() if broker_kind == "tansu" else KRaftCluster(Path(tmp) / "kafka")) as broker:
        cluster = broker.cluster()
        await ensure_topics(cluster, topics.ALL)
        progress(f"putting {n} simulated grid reports on {broker_kind}")
        await produce_reports(cluster, n)
        progress("baseline: raw aiokafka consume-and-parse loop")
        raw = await raw_consume(cluster, n)
        progress(f"  {raw:,.0f} events/s; pipeline: validate, correlate, route, sinks into chdb")
        pipe, cpu_us, loop_us = await pipeline_consume(cluster, n, Path(tmp))
        progress(f"  {pipe:,.0f} events/s, {cpu_us:,.0f} µs of CPU an event, {loop_us:,.0f} of them on the event loop")
    return {"events": n, "raw_per_s": round(raw), "pipeline_per_s": round(pipe), "ratio": round(pipe / raw, 4),
            "pipeline_cpu_us": round(cpu_us), "event_loop_us": round(loop_us)}


def sink_rows(n: int, seed: int = 11) -> list[bytes]:
    """``n`` normalised events from the simulator, as JSON the way the events topic carries them."""
    sim = CitySimulator(Cluster(""), seed=seed)
    validator, now = Validator(Pseudonymiser(b"bench")), datetime.now(timezone.utc)
    out = []
    for i in range(n):
        accepted = validator.grid_report(orjson.dumps(sim.background()), Origin("grid-reports", 0, i), now)
        out.append(accepted.events[0].model_dump_json().encode())
    return out


def sink(batch_sizes: tuple[int, ...] = (1000, 10000), rows: int = 60000, rounds: int = 3) -> list[dict[str, Any]]:
    """Rows per second into chdb through the sink's insert and through a bare insert of the same lines."""
    progress(f"sink: preparing {rows} normalised events")
    events = sink_rows(rows)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(tmp)
        try:
            migrate(store)
            for size in batch_sizes:
                batches = [events[i:i + size] for i in range(0, rows, size)]
                blocks = [b"\n".join(b) for b in batches]
                head = "INSERT INTO fengqiao.events SETTINGS " + ", ".join(
                    f"{k} = {sql_literal(v)}" for k, v in JSON_INSERT_SETTINGS.items())
                spent = {"sink": 0.0, "bare": 0.0}
                for r in range(rounds):
                    progress(f"  batches of {size}: round {r + 1} of {rounds}")
                    started = time.perf_counter()
                    for i, batch in enumerate(batches):
                        store.insert("events", batch, dedup_token=f"bench:{size}:{r}:{i}")
                    spent["sink"] += time.perf_counter() - started
                    started = time.perf_counter()
                    for block in blocks:
                        store._call(store._send, head, block)
                    spent["bare"] += time.perf_counter() - started
                n = rows * rounds
                result = {"batch": size, "sink_rows_per_s": round(n / spent["sink"]),
                          "bare_rows_per_s": round(n / spent["bare"]),
                          "ratio": round(spent["bare"] / spent["sink"], 3)}
                progress(f"  {result}")
                results.append(result)
        finally:
            store.close()
    return results


THROUGHPUT_HEADER = ("| date (UTC) | machine | command | events | raw aiokafka /s | pipeline /s | ratio "
                     "| pipeline CPU µs/event | event loop µs/event |")
SINK_HEADER = "| date (UTC) | machine | command | batch | sink rows/s | bare insert rows/s | ratio |"


def append_row(path: Path, header: str, row: str, intro: str) -> None:
    """Add ``row`` at the end of the table under ``header``; start the table (after ``intro``) if new."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    if header not in lines:
        separator = "|" + "---|" * (header.count("|") - 1)
        lines += ["", *intro.splitlines(), "", header, separator]
        end = len(lines)
    else:
        end = lines.index(header) + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
    lines.insert(end, row)
    path.write_text("\n".join(lines) + "\n")


def stamp() -> tuple[str, str]:
    return (datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            f"{os.cpu_count()} cores, Python {platform.python_version()}")


def record(result: dict[str, Any], command: str, path: Path = Path("BENCHMARKS.md")) -> None:
    """One throughput line in BENCHMARKS.md with the command, the machine and the date."""
    date, machine = stamp()
    append_row(path, THROUGHPUT_HEADER, f"| {date} | {machine} | `{command}` | {result['events']} | "
               f"{result['raw_per_s']} | {result['pipeline_per_s']} | {result['ratio']} | {result['pipeline_cpu_us']} | "
               f"{result['event_loop_us']} |",
               "Ratios are against a raw aiokafka consume-and-parse loop on the same broker, in the same "
               "process and minute.")


def record_sink(results: list[dict[str, Any]], command: str, path: Path = Path("BENCHMARKS.md")) -> None:
    date, machine = stamp()
    for r in results:
        append_row(path, SINK_HEADER, f"| {date} | {machine} | `{command}` | {r['batch']} | {r['sink_rows_per_s']} | "
                   f"{r['bare_rows_per_s']} | {r['ratio']} |",
                   "## ClickHouse sink\n\nRows per second into chdb through the sink's insert (JSON lines from the "
                   "topic, each checked for the table's required columns, with a deduplication token), and the "
                   "ratio to a bare insert of the same lines, alternating in the same run.")


def run(n: int, write: bool, broker_kind: str = "tansu") -> dict[str, Any]:
    result = asyncio.run(throughput(n, broker_kind))
    if write:
        record(result, f"fengqiao bench --events {n} --broker {broker_kind}")
    return result


def run_sink(write: bool) -> list[dict[str, Any]]:
    results = sink()
    if write:
        record_sink(results, "fengqiao bench --sink")
    return results
