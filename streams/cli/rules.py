"""``fengqiao rules list|test``: the rule pack, and every rule's test cases."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streams.cli.console import print_table
from streams.config import Settings
from streams.detection.cases import run_all
from streams.detection.ruleset import load_rules


def register(sub: Any) -> None:
    r = sub.add_parser("rules", help="the rule pack: list it, or run every rule's test cases")
    r.add_argument("action", choices=("test", "list"))
    r.add_argument("--dir", type=Path, help="a rule pack directory (default: FENGQIAO_RULES_DIR or the bundled one)")
    r.set_defaults(run=rules)


def rules(args: argparse.Namespace, settings: Settings) -> int:
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
