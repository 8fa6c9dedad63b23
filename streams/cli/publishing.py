"""``fengqiao publish``: a JSONL file or a CAP XML alert onto its input topic, checked first."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from streams.api.publish import publish as send
from streams.cli.console import print_table
from streams.config import Settings
from streams.intake.kinds import KINDS
from streams.runtime.kafka import Cluster


def register(sub: Any) -> None:
    pub = sub.add_parser("publish", help="publish a JSONL file or a CAP XML alert onto its input topic")
    pub.add_argument("file", type=Path)
    pub.add_argument("--kind", choices=tuple(KINDS),
                     help="what the file holds (guessed from its first document when not given)")
    add_bootstrap(pub)
    pub.add_argument("--quiet", action="store_true", help="no progress bar")
    pub.set_defaults(run=publish)


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Kafka HOST:PORT (default: FENGQIAO_KAFKA_BOOTSTRAP_SERVERS)")


def cluster_from(args: argparse.Namespace, settings: Settings) -> Cluster | None:
    """``--bootstrap`` or the configured Kafka, with the deployment's security; None (said on
    stderr) when neither is given."""
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    if not bootstrap:
        print("say where Kafka is: --bootstrap HOST:PORT (fengqiao up prints it) or FENGQIAO_KAFKA_BOOTSTRAP_SERVERS",
              file=sys.stderr)
        return None
    return Cluster.of(settings, bootstrap)


def publish(args: argparse.Namespace, settings: Settings) -> int:
    cluster = cluster_from(args, settings)
    if cluster is None:
        return 2
    summary = asyncio.run(send(cluster, args.file, args.kind, progress=not args.quiet))
    print(f"{args.file}: {len(summary.accepted)} accepted onto {summary.topic}, {len(summary.rejected)} rejected")
    if summary.rejected:
        print_table(summary.rejected)
    return 1 if summary.rejected else 0
