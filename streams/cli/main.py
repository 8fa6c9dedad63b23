"""The ``fengqiao`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from schemas.reference.regions import CENTRE_LEVEL_NAMES
from schemas.contracts.signals import CentreNotice, NoticeRole, RiskSignal
from streams.config import Settings
from streams.api.logs import configure as configure_logging
from streams.intake.kinds import KINDS
from streams.detection.ruleset import RuleError

ROLE = {NoticeRole.handle: "承办", NoticeRole.inform: "知悉"}


class Console:
    """Shows signals and notices as they happen."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def on_signal(self, signal: RiskSignal, new: bool) -> None:
        kind = "新信号" if new else "信号更新"
        self._line(f"[{signal.updated_at:%H:%M:%S}] {kind} {signal.level.label()} {signal.rule_name} "
                   f"v{signal.version} {signal.signal_id}\n    {signal.summary}")

    def on_notice(self, notice: CentreNotice) -> None:
        self._line(f"    → 通知 {notice.centre_code} {CENTRE_LEVEL_NAMES[notice.centre_level]} "
                   f"{ROLE[notice.role]}，{notice.ack_due:%m-%d %H:%M} 前签收，{notice.close_due:%m-%d %H:%M} 前办结")


def stop_on_signals() -> asyncio.Event:
    """An event that Ctrl-C or SIGTERM sets: the command then stops everything in order."""
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    return stop


def reload_on_sighup(stack: Any) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, stack.pipeline.reload_rules)


async def up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.simulator import CitySimulator
    from streams.app import Stack

    out = sys.stderr if args.json else sys.stdout
    stop = stop_on_signals()
    async with Stack(settings, Console(out)) as stack:
        reload_on_sighup(stack)
        where = "chdb " + str(settings.chdb_path) if settings.embedded_clickhouse else "ClickHouse server"
        print(f"fengqiao up: Kafka {stack.bootstrap_servers}"
              f"{' (embedded tansu)' if settings.embedded_kafka else ''}, {where}\n"
              f"  gateway http://{settings.gateway_host}:{stack.gateway.port}/v1/grid-reports  "
              f"metrics http://{settings.metrics_host}:{stack.metrics_port}/metrics\n"
              f"  rules: {', '.join(r.id for r in stack.rules)}. Ctrl-C stops.", file=out, flush=True)
        simulator, sim_stop, sim_task = None, asyncio.Event(), None
        if args.simulate:
            simulator = CitySimulator(stack.bootstrap_servers, city=args.city, rate=args.rate)
            sim_task = asyncio.create_task(simulator.run(sim_stop))
        watchdog = asyncio.create_task(stack.watch(stop))
        try:
            await asyncio.wait_for(stop.wait(), timeout=args.duration)
        except asyncio.TimeoutError:
            pass
        watchdog.cancel()
        sim_stop.set()
        if sim_task:
            try:
                await asyncio.wait_for(sim_task, 10.0)
            except asyncio.TimeoutError:
                print("the simulator did not stop within 10 s", file=sys.stderr)
        broker_ok = stack.broker is None or stack.broker.alive
        steps_ok = stack.pipeline is None or stack.pipeline.alive
        # Everything in flight is finished first (the embedded broker forgets what is left when it
        # stops): all of it after a timed run, up to 10 s after Ctrl-C.
        drained = await stack.drain(timeout=30.0 if args.duration is not None else 10.0) \
            if broker_ok and steps_ok else False
        summary = stack.summary()
        summary["drained"] = drained
        summary["broker_ok"] = broker_ok
        if simulator:
            summary["simulated_reports"] = simulator.sent
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        rows = ", ".join(f"{t} {n}" for t, n in summary["clickhouse_rows"].items())
        print(f"summary: {summary['events_in']} in, {summary['events_valid']} valid, "
              f"{summary['events_dlq']} dead-lettered, {summary['signals']} signals, "
              f"{summary['notices']} notices; ClickHouse rows: {rows}", file=out)
    if not broker_ok:
        print("fengqiao up: stopped because the embedded broker exited; see broker.log in the data dir",
              file=sys.stderr)
    if not steps_ok:
        print("fengqiao up: stopped because a step of the worker stopped working; see the log above",
              file=sys.stderr)
    return 0 if broker_ok and steps_ok else 1


async def serve(role: str, settings: Settings) -> int:
    """One role of a deployment on a configured Kafka: ``worker`` (the pipeline's steps, sinks and
    webhooks) or ``gateway`` (the publishers' gateway and the centres' dispatch desk)."""
    from streams.app import Stack

    if settings.embedded_kafka:
        print(f"fengqiao {role} needs FENGQIAO_KAFKA_BOOTSTRAP_SERVERS (fengqiao up runs the embedded broker)",
              file=sys.stderr)
        return 2
    stop = stop_on_signals()
    worker = role == "worker"
    async with Stack(settings, Console(sys.stdout) if worker else None, gateway=not worker, pipeline=worker) as stack:
        where = f"group {settings.app_id}" if worker else f"http://{settings.gateway_host}:{stack.gateway.port}"
        if worker:
            reload_on_sighup(stack)
        print(f"fengqiao {role} ready: {where}, Kafka {stack.bootstrap_servers}, "
              f"metrics http://{settings.metrics_host}:{stack.metrics_port}/metrics", flush=True)
        watchdog = asyncio.create_task(stack.watch(stop))
        await stop.wait()
        watchdog.cancel()
        healthy = stack.alive()
    return 0 if healthy else 1


def sql(args: argparse.Namespace, settings: Settings) -> int:
    """Run one SQL statement against the configured store (chdb: only while no stack owns it)."""
    from schemas.reference.regions import UnknownRegion
    from streams.store.jurisdiction import check_centre
    from streams.store.clickhouse import EmbeddedStore, open_store

    if args.as_centre:
        if not settings.embedded_clickhouse:
            print("--as-centre scopes the embedded store; on a server, connect as a user granted the "
                  f"role centre_{args.as_centre} (see fengqiao schema --access)", file=sys.stderr)
            return 2
        try:
            check_centre(args.as_centre)
        except UnknownRegion:
            print(f"no centre {args.as_centre} in the region registry (4, 6, 9 or 12 digits)", file=sys.stderr)
            return 2
    store = open_store(settings)
    try:
        if args.as_centre:
            assert isinstance(store, EmbeddedStore)
            store.scope_to(args.as_centre)
        rows = store.query(args.query, dict(args.param))
    except Exception as exc:  # ClickHouse's own message says what is wrong with the query
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, default=str))
    elif args.format == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        if rows:
            writer.writerow(rows[0])
        writer.writerows(r.values() for r in rows)
    else:
        print_table(rows)
    return 0


def migrate(settings: Settings) -> int:
    """Apply the ClickHouse schema (and load the region dimension, set the retention)."""
    from streams.store.clickhouse import open_store

    store = open_store(settings.model_copy(update={"clickhouse_migrate": True}))
    try:
        versions = store.query("SELECT version, name, applied_at FROM fengqiao.schema_migrations ORDER BY version")
    finally:
        store.close()
    print_table(versions)
    return 0


def brief(args: argparse.Namespace, settings: Settings) -> int:
    """Write the situation brief of a centre for a period (分析研判报告)."""
    from schemas.reference.regions import UnknownRegion
    from streams.reports.brief import gather, render
    from streams.store.jurisdiction import check_centre
    from streams.worker.pipeline import now_beijing
    from streams.store.clickhouse import open_store

    try:
        check_centre(args.centre)
    except UnknownRegion:
        print(f"no centre {args.centre} in the region registry (4, 6, 9 or 12 digits)", file=sys.stderr)
        return 2
    if args.end < args.start:
        print("--to is before --from", file=sys.stderr)
        return 2
    store = open_store(settings)
    try:
        now = now_beijing()
        page = render(gather(store, args.centre, args.start, args.end, now), now)
    finally:
        store.close()
    out = args.out or Path(f"brief-{args.centre}-{args.start}-{args.end}.html")
    out.write_text(page, encoding="utf-8")
    print(out)
    return 0


def drill(args: argparse.Namespace) -> int:
    """Run the reliability drills and print their table; exit 1 if anything was lost or doubled."""
    from streams.tools.drill import run as run_drills, table

    outcomes = asyncio.run(run_drills(quick=args.quick, only=args.only))
    print_table(table(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


def parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def schema(args: argparse.Namespace, settings: Settings) -> int:
    """Print the ClickHouse DDL: as the embedded store runs it, for a cluster, or the access rules."""
    from schemas.clickhouse.ddl import cluster_statements, migrations, script
    from streams.store.jurisdiction import access_statements

    if args.access:
        statements = access_statements(args.cluster)
    elif args.cluster:
        statements = cluster_statements(args.cluster)
    else:
        statements = [s for _, _, batch in migrations() for s in batch]
    sys.stdout.write(script(statements))
    return 0


def kafka_from(args: argparse.Namespace, settings: Settings) -> str | None:
    """``--bootstrap`` or the configured Kafka; None (said on stderr) when neither is given."""
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    if not bootstrap:
        print("say where Kafka is: --bootstrap HOST:PORT (fengqiao up prints it) or FENGQIAO_KAFKA_BOOTSTRAP_SERVERS",
              file=sys.stderr)
    return bootstrap


def publish(args: argparse.Namespace, settings: Settings) -> int:
    from streams.api.publish import publish as send

    bootstrap = kafka_from(args, settings)
    if not bootstrap:
        return 2
    summary = asyncio.run(send(bootstrap, args.file, args.kind, progress=not args.quiet))
    print(f"{args.file}: {len(summary.accepted)} accepted onto {summary.topic}, {len(summary.rejected)} rejected")
    if summary.rejected:
        print_table(summary.rejected)
    return 1 if summary.rejected else 0


def simulate(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta

    from schemas.contracts.events import BEIJING
    from streams.tools.incidents import Injector, injectable, off_case_streets
    from streams.tools.replay import write
    from streams.detection.ruleset import load_rules
    from streams.tools.simulator import CityTimeline

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
    from streams.tools.replay import replay as send

    bootstrap = kafka_from(args, settings)
    if not bootstrap:
        return 2
    try:
        n = asyncio.run(send(bootstrap, args.file, args.speed, progress=not args.quiet))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.file}: {n} events replayed")
    return 0


def quality(args: argparse.Namespace) -> int:
    from streams.tools.quality import record, run_week, table

    scores, incidents, left_out, facts = asyncio.run(run_week(args.days, args.scale, args.seed, args.repeat))
    rows = table(scores)
    print_table(rows)
    for s in dict.fromkeys(left_out):
        print(f"left out: {s.rule_id} / {s.case}: {s.reason}")
    print(json.dumps(facts, ensure_ascii=False))
    if not args.no_record:
        record(rows, facts, f"fengqiao bench --quality --days {args.days:g} --scale {args.scale:g} "
                            f"--repeat {args.repeat} --seed {args.seed}")
    return 0


def fixed_loads(args: argparse.Namespace) -> int:
    from streams.tools.latency import loads, record

    rates = tuple(float(r) for r in args.rates.split(","))
    results = asyncio.run(loads(rates, args.seconds))
    print_table(results)
    if not args.no_record:
        record(results, f"fengqiao bench --loads --rates {args.rates} --seconds {args.seconds:g}")
    return 0


def rules(args: argparse.Namespace, settings: Settings) -> int:
    from streams.detection.cases import run_all
    from streams.detection.ruleset import load_rules

    pack = load_rules(args.dir or settings.rules_dir)
    if args.action == "list":
        print_table([{"rule": r.id, "type": r.type, "level": r.level.value, "name": r.name, "basis": r.basis}
                     for r in pack])
        return 0
    results = run_all(pack)
    print_table([{"rule": r.rule, "case": r.case, "expected": r.expected or "none", "got": r.got or "none",
                  "result": "pass" if r.passed else "FAIL"} for r in results])
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def keys(args: argparse.Namespace, settings: Settings) -> int:
    from streams.api.keys import KeyStore

    store = KeyStore(settings.keys_path)
    if args.action == "add":
        record, token = store.add(args.publisher, args.id)
        print(f"key {record.id} for {record.publisher} (shown once, only its hash is kept in {store.path}):")
        print(token)
    elif args.action == "revoke":
        if not store.revoke(args.id):
            print(f"no key {args.id}", file=sys.stderr)
            return 1
        print(f"revoked {args.id}")
    else:
        print_table([{"id": k.id, "publisher": k.publisher} for k in store.keys])
    return 0


def print_table(rows: list[dict]) -> None:
    if not rows:
        print("(no rows)")
        return
    cells = [[str(v) for v in r.values()] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(rows[0])]
    print("  ".join(h.ljust(w) for h, w in zip(rows[0], widths)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))
    print(f"({len(rows)} rows)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fengqiao", description="枫桥 social-security risk early warning")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="start the whole platform on the configured (or embedded) Kafka and ClickHouse")
    p.add_argument("--simulate", action="store_true", help="feed the city simulator")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds and print a summary")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--rate", type=float, default=10.0, help="simulated grid reports per second")
    p.add_argument("--city", default="2102", help="city code for the simulator (2102 大连)")
    sub.add_parser("worker", help="the pipeline (validate, correlate, route, sinks) on the configured Kafka (no gateway)")
    br = sub.add_parser("brief", help="write a centre's situation brief (HTML with charts) for a period")
    br.add_argument("--centre", required=True, help="the centre's code (4, 6, 9 or 12 digits)")
    br.add_argument("--from", dest="start", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    br.add_argument("--to", dest="end", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    br.add_argument("--out", type=Path, help="the HTML file (default brief-CENTRE-FROM-TO.html)")
    dr = sub.add_parser("drill", help="crash, store outage, burst, hostile input, failing webhooks: nothing lost?")
    dr.add_argument("--quick", action="store_true", help="shorter runs (the test suite's)")
    dr.add_argument("--only", action="append", metavar="SCENARIO", help="one scenario (repeatable)")
    sub.add_parser("dashboards", help="write the Grafana dashboards (dashboards/*.json) from their code")
    sub.add_parser("migrate", help="apply the ClickHouse schema to the configured store, then exit")
    sub.add_parser("gateway", help="the publishers' gateway and the centres' dispatch desk on the configured Kafka")
    b = sub.add_parser("bench", help="measure throughput against a raw aiokafka baseline; append to BENCHMARKS.md")
    b.add_argument("--events", type=int, default=20000, help="how many grid reports (default 20000)")
    b.add_argument("--no-record", action="store_true", help="print only; do not append to BENCHMARKS.md")
    b.add_argument("--sink", action="store_true", help="the ClickHouse sink against a bare insert of the same rows instead")
    b.add_argument("--quality", action="store_true",
                   help="precision and recall per rule over a simulated week with injected incidents instead")
    b.add_argument("--loads", action="store_true",
                   help="event-to-notice latency p50/p99 and worker memory at fixed loads instead")
    b.add_argument("--rates", default="200,2000,10000", help="--loads: events per second (default 200,2000,10000)")
    b.add_argument("--seconds", type=float, default=30.0, help="--loads: seconds at each load (default 30)")
    b.add_argument("--days", type=float, default=7.0, help="--quality: simulated days (default 7)")
    b.add_argument("--scale", type=float, default=0.05, help="--quality: share of the city's volume (default 0.05)")
    b.add_argument("--repeat", type=int, default=2, help="--quality: times each rule case is injected (default 2)")
    b.add_argument("--seed", type=int, default=7)
    sim = sub.add_parser("simulate", help="write the city's inputs in simulated time, incidents injected, to a file")
    sim.add_argument("--days", type=float, default=1.0)
    sim.add_argument("--scale", type=float, default=1.0, help="share of the city's volume (default 1: the whole city)")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD", help="first day (default: days ago)")
    sim.add_argument("--out", type=Path, required=True, help="the recording (JSON Lines); ground truth beside it")
    rp = sub.add_parser("replay", help="put a recorded event file on its topics, X times faster than recorded")
    rp.add_argument("file", type=Path)
    rp.add_argument("--speed", type=float, default=1.0, help="X times real time; 0: as fast as possible")
    rp.add_argument("--bootstrap", help="Kafka HOST:PORT (default: FENGQIAO_KAFKA_BOOTSTRAP_SERVERS)")
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    q = sub.add_parser("sql", help="run SQL against the configured ClickHouse (or the embedded chdb)")
    q.add_argument("query")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--as-centre", metavar="CODE", help="see only this centre's jurisdiction (embedded store)")
    q.add_argument("--param", action="append", default=[], type=parameter, metavar="NAME=VALUE",
                   help="a value for {NAME:Type} in the query (repeatable), as clickhouse-client --param_NAME")
    d = sub.add_parser("schema", help="print the ClickHouse DDL (embedded, --cluster NAME) or --access rules")
    d.add_argument("--cluster", metavar="NAME", help="Replicated and Distributed tables ON CLUSTER NAME")
    d.add_argument("--access", action="store_true", help="roles per centre and row policies for a server")
    pub = sub.add_parser("publish", help="publish a JSONL file or a CAP XML alert onto its input topic")
    pub.add_argument("file", type=Path)
    pub.add_argument("--kind", choices=tuple(KINDS),
                     help="what the file holds (guessed from its first document when not given)")
    pub.add_argument("--bootstrap", help="Kafka HOST:PORT (default: FENGQIAO_KAFKA_BOOTSTRAP_SERVERS)")
    pub.add_argument("--quiet", action="store_true", help="no progress bar")
    r = sub.add_parser("rules", help="the rule pack: list it, or run every rule's test cases")
    r.add_argument("action", choices=("test", "list"))
    r.add_argument("--dir", type=Path, help="a rule pack directory (default: FENGQIAO_RULES_DIR or the bundled one)")
    k = sub.add_parser("keys", help="publishers' API keys for the gateway: add, list, revoke")
    ks = k.add_subparsers(dest="action", required=True)
    add = ks.add_parser("add", help="create a key for a publisher and show it once")
    add.add_argument("publisher", help="grid, broadcast, or a department code (police, petition, …)")
    add.add_argument("--id", help="a name for the key")
    ks.add_parser("list")
    rev = ks.add_parser("revoke")
    rev.add_argument("id")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
        configure_logging(settings.log_level)
        return run(parser, args, settings)
    except (RuleError, FileNotFoundError, ValueError) as exc:  # a wrong rule or input stops with its reason
        print(f"fengqiao {args.command}: {exc}", file=sys.stderr)
        return 2


def run(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        return asyncio.run(up(args, settings))
    if args.command in ("worker", "gateway"):
        return asyncio.run(serve(args.command, settings))
    if args.command == "publish":
        return publish(args, settings)
    if args.command == "rules":
        return rules(args, settings)
    if args.command == "keys":
        return keys(args, settings)
    if args.command == "sql":
        return sql(args, settings)
    if args.command == "migrate":
        return migrate(settings)
    if args.command == "drill":
        return drill(args)
    if args.command == "brief":
        return brief(args, settings)
    if args.command == "dashboards":
        from streams.reports.dashboards import write

        for path in write():
            print(path)
        return 0
    if args.command == "schema":
        return schema(args, settings)
    if args.command == "simulate":
        return simulate(args)
    if args.command == "replay":
        return replay(args, settings)
    if args.command == "bench":
        from streams.tools.bench import run, run_sink

        if args.quality:
            return quality(args)
        if args.loads:
            return fixed_loads(args)
        if args.sink:
            print(json.dumps(run_sink(write=not args.no_record)))
        else:
            print(json.dumps(run(max(1, args.events), write=not args.no_record)))
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
