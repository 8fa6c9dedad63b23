"""Detection quality (检出质量): precision and recall per rule over a simulated week.

``fengqiao bench --quality`` builds the city's week in simulated time (``CityTimeline``) with the
rule pack's cases injected on streets and at times of their own (``streams/incidents.py``),
puts it on a fresh embedded broker as fast as it will take it, lets a real pipeline process it
into chdb, and scores the signals found there against the ground truth. It also reports how
long the pipeline took per simulated day.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from schemas.contracts.events import BEIJING
from streams import topics
from streams.app import worker_pipeline
from streams.config import Settings
from streams.detection.ruleset import load_rules
from streams.metrics import Metrics
from streams.runtime.broker import EmbeddedBroker
from streams.runtime.kafka import Cluster
from streams.runtime.topics import drained, ensure_topics
from streams.store.clickhouse import Store, open_store
from streams.tools.bench import append_row, progress, stamp
from streams.tools.incidents import Incident, Injector, RuleScore, Skipped, injectable, off_case_streets, score
from streams.tools.simulator import CityTimeline
from streams.worker.correlate import ABSENCES_EVERY
from streams.worker.pipeline import groups

APP_ID = "bench-quality"


def found_signals(store: Store) -> list[dict[str, Any]]:
    """Every signal (latest version) with the uids of its evidence."""
    return store.query(
        "SELECT s.signal_id AS signal_id, s.rule_id AS rule_id, toString(s.raised_at) AS raised_at, "
        "groupArray(e.uid) AS evidence FROM fengqiao.signals AS s FINAL "
        "LEFT JOIN (SELECT DISTINCT signal_id, uid FROM fengqiao.signal_evidence) AS e ON e.signal_id = s.signal_id "
        "WHERE NOT s.drill GROUP BY s.signal_id, s.rule_id, s.raised_at")


async def put(cluster: Cluster, records: list[tuple[datetime, str, bytes, dict[str, Any]]]) -> None:
    producer = cluster.producer(acks="all", linger_ms=20, max_batch_size=1 << 18)
    await producer.start()
    try:
        for n, (_, topic, key, value) in enumerate(records, 1):
            await producer.send(topic, orjson.dumps(value), key=key)
            if n % 20000 == 0:
                progress(f"  {n:,} of {len(records):,} on the broker")
        await producer.flush()
    finally:
        await producer.stop()


async def run_week(days: float, scale: float, seed: int, repeat: int,
                   then: Callable[[Store, Settings], None] | None = None,
                   ) -> tuple[list[RuleScore], list[Incident], list[Skipped], dict[str, Any]]:
    """The simulated week through a real pipeline, scored; ``then`` is given the store and the
    settings of the run once it is done (a backtest over it)."""
    rules = load_rules()
    cases, skipped = injectable(rules)
    end = datetime.now(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    incidents, unplaced = Injector("2102", seed).plan(cases, start, end, repeat)
    # the city goes on for a day after the last incident is due, so every absence can fall due
    timeline = CityTimeline(start, days + 1, scale=scale, seed=seed)
    records = list(timeline.merged([x for i in incidents for x in i.inputs], off_case_streets(incidents, rules)))
    progress(f"simulated {days:g} days at {scale:g} of the city's volume: {len(records):,} inputs, "
             f"{sum(i.positive for i in incidents)} incidents and {sum(not i.positive for i in incidents)} decoys")
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="fq-quality-") as tmp:
        cluster = broker.cluster()
        await ensure_topics(cluster, topics.ALL)
        await put(cluster, records)
        # The week is on the broker before the worker starts, so the validate step reads each source's
        # whole backlog at once: a source is counted silent after 2 s instead of 30.
        settings = Settings(data_dir=Path(tmp), kafka_bootstrap_servers=cluster.bootstrap_servers, app_id=APP_ID,
                            kafka_session_timeout=3.0, source_idle_seconds=2.0, idle_watermark="event")
        store, metrics = open_store(settings), Metrics()
        pipeline = worker_pipeline(settings, cluster, store, rules, metrics)
        try:
            progress("the pipeline processes the week (validate, correlate, route, store)")
            await pipeline.start()
            began = time.perf_counter()
            done = await drained(cluster, groups(APP_ID), timeout=3600) is not None
            seconds = time.perf_counter() - began
            # Then the sources fall silent, the watermarks move on to the end of the week, and the
            # absences still open fall due (a wait of fixed length, not counted above): what they
            # raise is drained in turn.
            await asyncio.sleep(settings.source_idle_seconds + 2 * ABSENCES_EVERY)
            done = done and await drained(cluster, groups(APP_ID), timeout=600) is not None
            signals = found_signals(store)
            if then is not None:
                then(store, settings)
        finally:
            await pipeline.stop()
            store.close()
    scores = score(signals, incidents, [r.id for r in rules])
    facts = {"inputs": len(records), "seconds": round(seconds, 1), "drained": done, "days": days, "scale": scale,
             "seconds_per_city_day": round(seconds / (days + 1) / scale, 1) if scale else None,
             "signals": len(signals), "counts": timeline.counts}
    return scores, incidents, skipped + unplaced, facts


def table(scores: list[RuleScore]) -> list[dict[str, Any]]:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"
    rows = [{"rule": s.rule_id, "incidents": s.incidents, "found": s.found, "recall": f(s.recall),
             "decoys": s.decoys, "fired on decoys": s.fired_on_decoys,
             "decoys joined by background": s.decoys_joined_by_background, "precision": f(s.precision),
             "from background": s.from_background} for s in scores if s.incidents or s.decoys or s.from_background]
    found, incidents = sum(s.found for s in scores), sum(s.incidents for s in scores)
    fired = found + sum(s.fired_on_decoys for s in scores)
    rows.append({"rule": "all", "incidents": incidents, "found": found,
                 "recall": f(found / incidents if incidents else None), "decoys": sum(s.decoys for s in scores),
                 "fired on decoys": fired - found,
                 "decoys joined by background": sum(s.decoys_joined_by_background for s in scores),
                 "precision": f(found / fired if fired else None),
                 "from background": sum(s.from_background for s in scores)})
    return rows


QUALITY_HEADER = ("| date (UTC) | machine | command | inputs | incidents | decoys | recall | precision | "
                  "below target | decoys joined by background | from background | s per city-day |")


def record(rows: list[dict[str, Any]], facts: dict[str, Any], command: str, path: Path = Path("BENCHMARKS.md")) -> None:
    """One line in BENCHMARKS.md: the run's overall figures and the rules below the targets."""
    date, machine = stamp()
    total = rows[-1]
    below = [r["rule"] for r in rows[:-1]
             if (r["recall"] != "-" and float(r["recall"]) < 0.95) or (r["precision"] != "-" and float(r["precision"]) < 0.9)]
    append_row(path, QUALITY_HEADER,
               f"| {date} | {machine} | `{command}` | {facts['inputs']} | {total['incidents']} | {total['decoys']} | "
               f"{total['recall']} | {total['precision']} | {', '.join(below) or 'none'} | "
               f"{total['decoys joined by background']} | {total['from background']} | "
               f"{facts['seconds_per_city_day']} |",
               "## Detection quality\n\nRecall and precision against the ground truth of injected incidents "
               "(the rule pack's cases, placed on streets and at times of their own in a simulated week); "
               "targets 0.95 and 0.9. A decoy fired on with background reports among the evidence is counted "
               "apart (the rule did what it says on events that were there), and so are signals no injected "
               "case explains (from background).")
