"""``fengqiao sql``, ``migrate``, ``schema``, ``brief`` and ``dashboards``: the store and what is
read from it."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from schemas.clickhouse.ddl import cluster_statements, migrations, script
from schemas.reference.regions import UnknownRegion
from streams.cli.console import print_table
from streams.config import Settings
from streams.reports import dashboards, reference
from streams.reports.brief import gather, render
from streams.store.clickhouse import EmbeddedStore, open_store
from streams.store.jurisdiction import access_statements, check_centre
from streams.worker.pipeline import now_beijing


def parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def register(sub: Any) -> None:
    q = sub.add_parser("sql", help="run SQL against the configured ClickHouse (or the embedded chdb)")
    q.add_argument("query")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--as-centre", metavar="CODE", help="see only this centre's jurisdiction (embedded store)")
    q.add_argument("--param", action="append", default=[], type=parameter, metavar="NAME=VALUE",
                   help="a value for {NAME:Type} in the query (repeatable), as clickhouse-client --param_NAME")
    q.set_defaults(run=sql)
    sub.add_parser("migrate", help="apply the ClickHouse schema to the configured store, then exit"
                   ).set_defaults(run=migrate)
    d = sub.add_parser("schema", help="print the ClickHouse DDL (embedded, --cluster NAME) or --access rules")
    d.add_argument("--cluster", metavar="NAME", help="Replicated and Distributed tables ON CLUSTER NAME")
    d.add_argument("--access", action="store_true", help="roles per centre and row policies for a server")
    d.set_defaults(run=schema)
    br = sub.add_parser("brief", help="write a centre's situation brief (HTML with charts) for a period")
    br.add_argument("--centre", required=True, help="the centre's code (4, 6, 9 or 12 digits)")
    br.add_argument("--from", dest="start", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    br.add_argument("--to", dest="end", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    br.add_argument("--out", type=Path, help="the HTML file (default brief-CENTRE-FROM-TO.html)")
    br.set_defaults(run=brief)
    sub.add_parser("dashboards", help="write the Grafana dashboards (dashboards/*.json) from their code"
                   ).set_defaults(run=write_dashboards)
    sub.add_parser("docs", help="write the guides' reference tables (configuration, topics, rules, metrics) from the code"
                   ).set_defaults(run=write_docs)


def known_centre(code: str) -> bool:
    try:
        check_centre(code)
    except UnknownRegion:
        print(f"no centre {code} in the region registry (4, 6, 9 or 12 digits)", file=sys.stderr)
        return False
    return True


def sql(args: argparse.Namespace, settings: Settings) -> int:
    """Run one SQL statement against the configured store (chdb: only while no stack owns it)."""
    if args.as_centre:
        if not settings.embedded_clickhouse:
            print("--as-centre scopes the embedded store; on a server, connect as a user granted the "
                  f"role centre_{args.as_centre} (see fengqiao schema --access)", file=sys.stderr)
            return 2
        if not known_centre(args.as_centre):
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
        writer = csv.writer(sys.stdout)
        if rows:
            writer.writerow(rows[0])
        writer.writerows(r.values() for r in rows)
    else:
        print_table(rows)
    return 0


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the ClickHouse schema (and load the region dimension, set the retention)."""
    store = open_store(settings.model_copy(update={"clickhouse_migrate": True}))
    try:
        versions = store.query("SELECT version, name, applied_at FROM fengqiao.schema_migrations ORDER BY version")
    finally:
        store.close()
    print_table(versions)
    return 0


def schema(args: argparse.Namespace, settings: Settings) -> int:
    """Print the ClickHouse DDL: as the embedded store runs it, for a cluster, or the access rules."""
    if args.access:
        statements = access_statements(args.cluster)
    elif args.cluster:
        statements = cluster_statements(args.cluster)
    else:
        statements = [s for _, _, batch in migrations() for s in batch]
    sys.stdout.write(script(statements))
    return 0


def brief(args: argparse.Namespace, settings: Settings) -> int:
    """Write the situation brief of a centre for a period (分析研判报告)."""
    if not known_centre(args.centre):
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


def write_dashboards(args: argparse.Namespace, settings: Settings) -> int:
    for path in dashboards.write():
        print(path)
    return 0


def write_docs(args: argparse.Namespace, settings: Settings) -> int:
    for path in reference.write():
        print(path)
    return 0
