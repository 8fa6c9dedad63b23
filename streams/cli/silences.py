"""``fengqiao silence add | list | expire``: silences (静默) from the command line, on the same
topic as the gateway's, recorded as made by ``cli:<user>@<host>``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas.contracts.events import BEIJING
from schemas.contracts.silences import Silence, SilenceRequest
from streams import topics
from streams.api.silences import expire, in_force, keep, make_silence
from streams.cli.console import print_table
from streams.cli.publishing import add_bootstrap, cluster_from
from streams.config import Settings
from streams.detection.ruleset import load_rules, parse_duration
from streams.runtime import kafka
from streams.runtime.followed import FollowedTable
from streams.runtime.kafka import Cluster
from streams.store.jurisdiction import check_centre


def register(sub: Any) -> None:
    p = sub.add_parser("silence", help="silences (静默): hold back matching signals for a time, stored, not paged")
    p.set_defaults(run=silence)
    ps = p.add_subparsers(dest="action", required=True)
    add = ps.add_parser("add", help="make a silence within a centre's jurisdiction")
    add.add_argument("--centre", required=True, help="the centre that makes it (4, 6, 9 or 12 digits)")
    add.add_argument("--rule", help="a rule id")
    add.add_argument("--region", help="a region code prefix inside the centre (default: the whole jurisdiction)")
    add.add_argument("--entity", help="a signal's entity, e.g. 210202001004|5栋")
    add.add_argument("--publisher", help="a publisher whose events alone the signal rests on, e.g. dalian-ebs")
    add.add_argument("--device", help="an IoT device whose alarms alone the signal rests on (attributes.device_id)")
    length = add.add_mutually_exclusive_group(required=True)
    length.add_argument("--for", dest="duration", help="how long from now: 30m, 4h, 2d")
    length.add_argument("--until", help="when it ends, e.g. 2026-12-06T08:00+08:00")
    add.add_argument("--reason", required=True, help="why, for the audit")
    lst = ps.add_parser("list", help="the silences not ended yet (of one centre's jurisdiction)")
    lst.add_argument("--centre", default="")
    exp = ps.add_parser("expire", help="end a silence now")
    exp.add_argument("silence_id")
    for parser in (add, lst, exp):
        add_bootstrap(parser)


def actor() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def silence(args: argparse.Namespace, settings: Settings) -> int:
    cluster = cluster_from(args, settings)
    if cluster is None:
        return 2
    return asyncio.run(run(args, settings, cluster))


async def run(args: argparse.Namespace, settings: Settings, cluster: Cluster) -> int:
    now = datetime.now(BEIJING)
    book = FollowedTable(cluster, topics.SILENCES, Silence.model_validate_json)
    await book.start()
    producer = cluster.producer(acks="all")
    await producer.start()
    try:
        if args.action == "list":
            found = in_force([s for s in book.values.values() if isinstance(s, Silence)], args.centre, now)
            print_table([{"silence": s.silence_id, "centre": s.centre, "rule": s.rule_id or "", "region": s.region_code,
                          "entity": s.entity or "", "publisher": s.publisher or "", "device": s.device or "", "until": f"{s.ends_at:%m-%d %H:%M}",
                          "by": s.created_by, "reason": s.reason} for s in found])
            return 0
        if args.action == "expire":
            found = book.values.get(args.silence_id)
            if not isinstance(found, Silence) or found.change.value == "expired" or found.ends_at <= now:
                print(f"no silence {args.silence_id} in force")
                return 1
            await keep(producer, book, expire(found, actor(), now))
            print(f"{args.silence_id} expired")
            return 0
        ends = datetime.fromisoformat(args.until) if args.until else now + parse_duration(args.duration)
        try:
            asked = SilenceRequest(rule_id=args.rule, region=args.region, entity=args.entity, publisher=args.publisher,
                                   device=args.device, ends_at=ends, reason=args.reason)
        except ValidationError as exc:
            print("; ".join(f"{'.'.join(map(str, e['loc'])) or 'silence'}: {e['msg']}" for e in exc.errors()))
            return 2
        if asked.rule_id and asked.rule_id not in {r.id for r in load_rules(settings.rules_dir)}:
            print(f"no rule {asked.rule_id} in the pack")
            return 2
        made = make_silence(asked, check_centre(args.centre), actor(), now)
        if isinstance(made, tuple):
            print(made[2])
            return 2
        await keep(producer, book, made)
        print(f"{made.silence_id}: until {made.ends_at:%Y-%m-%d %H:%M}, matching signals are stored and page no one")
        return 0
    finally:
        await kafka.stop(producer)
        await book.stop()
