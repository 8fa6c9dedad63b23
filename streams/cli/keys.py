"""``fengqiao keys add|list|revoke``: API keys of publishers and centres."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streams.api.keys import KeyStore
from streams.cli.console import print_table
from streams.config import Settings


def register(sub: Any) -> None:
    k = sub.add_parser("keys", help="publishers' API keys for the gateway: add, list, revoke")
    k.set_defaults(run=keys)
    ks = k.add_subparsers(dest="action", required=True)
    add = ks.add_parser("add", help="create a key for a publisher and show it once")
    add.add_argument("publisher", help="grid, broadcast, or a department code (police, petition, …)")
    add.add_argument("--id", help="a name for the key")
    ks.add_parser("list")
    rev = ks.add_parser("revoke")
    rev.add_argument("id")


def keys(args: argparse.Namespace, settings: Settings) -> int:
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
