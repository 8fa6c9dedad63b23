"""``fengqiao rules list|test|backtest``: the rule pack, every rule's test cases, and the pack run
over the events stored in ClickHouse beside what the live run raised (``reports.backtest``)."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from streams.cli.console import print_table
from streams.config import Settings
from streams.detection.cases import run_all
from streams.detection.ruleset import load_informational, load_rules, published_categories, unread
from streams.reports.backtest import Backtest, as_json, backtest
from streams.runtime.topics import Topology
from streams.store.clickhouse import open_store


def register(sub: Any) -> None:
    r = sub.add_parser("rules", help="the rule pack: list it, run every rule's test cases, or backtest it over "
                       "the stored events against what the live run raised")
    r.add_argument("action", choices=("test", "list", "backtest"))
    r.add_argument("--dir", type=Path, help="a rule pack directory (default: FENGQIAO_RULES_DIR or the bundled one)")
    r.add_argument("--from", dest="first", type=date.fromisoformat, help="backtest: the first day (Beijing time)")
    r.add_argument("--to", dest="last", type=date.fromisoformat, help="backtest: the last day, whole (default: --from)")
    r.add_argument("--json", action="store_true", help="backtest: the result as JSON")
    r.set_defaults(run=rules)


def rules(args: argparse.Namespace, settings: Settings) -> int:
    pack = load_rules(args.dir or settings.rules_dir)
    if args.action == "backtest":
        return run_backtest(args, settings, pack)
    informational = load_informational(args.dir or settings.rules_dir)
    if args.action == "list":
        print_table([{"rule": r.id, "type": r.type, "level": r.level.value, "name": r.name, "basis": r.basis}
                     for r in pack])
        print("\ninformational (仅供知悉: read by no rule of its own, on purpose):")
        print_table([{"source": source.value, "category": c, "why": why}
                     for source in published_categories() for c, why in informational.of(source).items()])
        return 0
    results = run_all(pack)
    print_table([{"rule": r.rule, "case": r.case, "expected": r.expected or "none", "got": r.got or "none",
                  "result": "pass" if r.passed else "FAIL"} for r in results])
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    unsaid = unread(pack, informational, published_categories())
    for problem in unsaid:
        print(f"FAIL {problem}")
    return 1 if failed or unsaid else 0


def run_backtest(args: argparse.Namespace, settings: Settings, pack: list) -> int:
    """规则回测: pages no one, keeps nothing; prints per rule what would fire against what did."""
    if args.first is None:
        print("rules backtest needs --from DAY (and --to DAY)", file=sys.stderr)
        return 2
    last = args.last or args.first
    if last < args.first:
        print(f"--to {last} is before --from {args.first}", file=sys.stderr)
        return 2
    store = open_store(settings)
    try:
        result = backtest(store, pack, args.first, last, Topology(settings.partition_scale),
                          settings.source_idle_seconds, settings.idle_watermark == "clock")
    finally:
        store.close()
    if args.json:
        sys.stdout.buffer.write(as_json(result) + b"\n")
    else:
        report(result)
    return 0


def report(result: Backtest) -> None:
    """Per rule what the pack raised against what the live run did, then every signal that differs."""
    days = f"{result.start:%Y-%m-%d} to {result.end - timedelta(days=1):%Y-%m-%d}"
    print(f"{days}: {result.events} events read, with the pack's lead-in and tail")
    print_table([{"rule": r.rule_id, "live": r.live, "backtest": r.backtest, "same": r.same,
                  "only live": r.only_live, "only backtest": r.only_backtest, "differ": r.differ,
                  "pack version": r.version or "-", "live ran": ", ".join(sorted(r.live_versions)) or "-"}
                 for r in result.rules])
    if result.agrees:
        print("the backtest raises exactly the signals the live run raised")
        return
    print(f"{len(result.differences)} signals differ:")
    print_table([{"rule": d.rule_id, "entity": d.entity, "window start": f"{d.window_start:%Y-%m-%d %H:%M}",
                  "live": d.live or "-", "backtest": d.backtest or "-", "signal": d.signal_id}
                 for d in result.differences])
