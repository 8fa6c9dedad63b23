"""``fengqiao population import FILE``: the register of special populations (特殊人群名册) onto
the department alerts topic, one registration or deregistration per row."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from schemas.reference.populations import populations
from schemas.reference.regions import Level, registry
from streams.api.publish import publish_documents
from streams.app import pseudonymiser
from streams.cli.console import print_table
from streams.cli.publishing import add_bootstrap, cluster_from
from streams.config import Settings
from streams.intake.registers import COLUMNS, RegisterError, registrations, rows_naming
from streams.runtime.kafka import Cluster


def register(sub: Any) -> None:
    p = sub.add_parser("population", help="the register of special populations: import it, list its kinds")
    p.set_defaults(run=population)
    ps = p.add_subparsers(dest="action", required=True)
    imp = ps.add_parser("import", help="publish a register (CSV) as registrations and deregistrations")
    imp.add_argument("file", type=Path, help=f"CSV: {','.join(COLUMNS)}")
    add_bootstrap(imp)
    ps.add_parser("kinds", help="the kinds a person may be registered as (schemas/populations.yaml)")
    find = ps.add_parser("find", help="the rows of a register file naming the person a signal's pseudonym is")
    find.add_argument("pseudonym", help="p-… as a case's object names it (the part after the community code)")
    find.add_argument("file", type=Path, help="the register file (CSV) the holder has")


def population(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "kinds":
        print_table([{"population": code, "name": name} for code, name in populations().items()])
        return 0
    if args.action == "find":
        found = rows_naming(args.file.read_text("utf-8"), pseudonymiser(settings), args.pseudonym.split("|")[-1])
        print_table([{"line": n, "name": name, "population": kind} for n, name, kind in found])
        return 0 if found else 1
    cluster = cluster_from(args, settings)
    if cluster is None:
        return 2
    return asyncio.run(import_register(args.file, cluster, settings))


async def import_register(path: Path, cluster: Cluster, settings: Settings) -> int:
    """Check every row, then publish them all (nothing when any row is wrong); 0 when all landed."""
    communities = {r.code for r in registry().of_level(Level.community) if r.status == "active"}
    try:
        rows = registrations(path.read_text("utf-8"), pseudonymiser(settings), communities)
    except RegisterError as exc:
        print(f"{path}: refused, nothing published:")
        for problem in exc.problems:
            print(f"  {problem}")
        return 1
    docs = [(line, json.dumps(doc, ensure_ascii=False).encode()) for line, doc in rows]
    summary = await publish_documents(cluster, "dept-alerts", docs, progress=False)
    print(f"{path}: {len(summary.accepted)} registrations and deregistrations onto {summary.topic}, "
          f"{len(summary.rejected)} rejected")
    if summary.rejected:
        print_table(summary.rejected)
    return 1 if summary.rejected else 0
