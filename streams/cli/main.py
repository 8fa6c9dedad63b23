"""The ``fengqiao`` command: one module per group of commands, each registering its own."""

from __future__ import annotations

import argparse
import sys
from importlib.util import find_spec

from schemas.reference.matters import CatalogueError, use_catalogue
from schemas.reference.regions import PackError, use_pack
from streams.api.logs import configure as configure_logging
from streams.cli import data, keys, operators, platform, population, publishing, regions, rules, silences
from streams.config import Settings
from streams.detection.ruleset import RuleError

GROUPS = [platform, publishing, rules, regions, population, silences, keys, operators, data]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="fengqiao", description="枫桥 social-security risk early warning")
    sub = top.add_subparsers(dest="command", required=True)
    groups = list(GROUPS)
    if find_spec("streams.tools") is not None:  # the tools are not in the worker image
        from streams.cli import tools

        groups.append(tools)
    for group in groups:
        group.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
        configure_logging(settings.log_level)
        use_pack(settings.region_pack_path(), settings.grid_register_path())  # the places every command knows
        use_catalogue(settings.matters_file)  # and the matters
        return args.run(args, settings)
    except (RuleError, PackError, CatalogueError, FileNotFoundError, ValueError) as exc:  # a wrong input stops, said
        print(f"fengqiao {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
