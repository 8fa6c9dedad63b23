"""``fengqiao operators add|list|passwd|disable|enable``: the console's operator accounts."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from datetime import datetime
from typing import Any

from streams.api.operators import OperatorStore, Role
from streams.cli.console import print_table
from streams.config import Settings


def register(sub: Any) -> None:
    o = sub.add_parser("operators", help="the console's operator accounts: add, list, passwd, disable, enable")
    o.set_defaults(run=operators)
    os_ = o.add_subparsers(dest="action", required=True)
    add = os_.add_parser("add", help="an account for a person of a centre")
    add.add_argument("centre", help="the centre's code: 4 (city), 6 (county), 9 (street) or 12 (community) digits")
    add.add_argument("login", help="what they sign in with: letters, digits, '.', '_', '-' (e.g. wang.fang)")
    add.add_argument("--name", default="", help="the name the console shows (e.g. 王芳)")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.operator.value,
                     help="operator acts on cases; observer only sees them")
    _password_options(add)
    pw = os_.add_parser("passwd", help="a new password (ends the account's sessions)")
    pw.add_argument("login")
    _password_options(pw)
    os_.add_parser("list")
    for action, text in (("disable", "refuse sign-in and end its sessions at once"),
                         ("enable", "allow sign-in again (also lifts a lock)")):
        a = os_.add_parser(action, help=text)
        a.add_argument("login")


def _password_options(p: argparse.ArgumentParser) -> None:
    how = p.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    how.add_argument("--generate", action="store_true", help="make a random password and show it once")


def _password(args: argparse.Namespace) -> str:
    if args.generate:
        password = secrets.token_urlsafe(12)
        print(f"password (shown once): {password}")
        return password
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask the password on: use --password-stdin or --generate")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ValueError("the two passwords differ")
    return first


def operators(args: argparse.Namespace, settings: Settings) -> int:
    store = OperatorStore(settings.operators_path)
    if args.action == "add":
        operator = store.add(args.centre, args.login, _password(args), args.name, Role(args.role))
        print(f"operator {operator.login} ({operator.name}, {operator.role.value}) of centre {operator.centre} "
              f"added to {store.path}")
    elif args.action == "passwd":
        store.set_password(args.login, _password(args))
        print(f"new password for {args.login}; its sessions are ended")
    elif args.action == "disable":
        store.disable(args.login)
        print(f"{args.login} disabled; its sessions are ended")
    elif args.action == "enable":
        store.enable(args.login)
        print(f"{args.login} enabled")
    else:
        now = store.clock()
        print_table([{"login": o.login, "name": o.name, "centre": o.centre, "role": o.role.value,
                      "state": "disabled" if o.disabled else ("locked" if o.locked(now) else "active"),
                      "created": datetime.fromtimestamp(o.created_at).strftime("%Y-%m-%d")}
                     for o in store.accounts.values()])
    return 0
