"""``fengqiao regions import FILE | list | show CODE``: region packs (区划包); ``fengqiao grids
import FILE | list``: the grid register (网格台账)."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from schemas.reference.regions import (
    BUNDLED,
    Level,
    bundled_text,
    carry_over,
    read_grids,
    read_pack,
    registry,
    use_pack,
    write_pack,
)
from streams.cli.console import print_table
from streams.config import Settings


def register(sub: Any) -> None:
    r = sub.add_parser("regions", help="region packs: import a table as a new version, list them, show a code")
    r.set_defaults(run=regions)
    rs = r.add_subparsers(dest="action", required=True)
    imp = rs.add_parser("import", help="validate a region table (CSV) and install it as a new version")
    imp.add_argument("file", type=Path, help="CSV: code,name,level,parent,valid_from,valid_to,status,successor,note")
    imp.add_argument("--version", help="its name (default: the file's '# pack:' line)")
    rs.add_parser("list", help="the bundled pack and those installed, the chosen one marked")
    show = rs.add_parser("show", help="a code: its names at every level, its centres, what replaced it")
    show.add_argument("code")
    g = sub.add_parser("grids", help="the grid register: import it (validated against the region pack), list it")
    g.set_defaults(run=grids)
    gs = g.add_subparsers(dest="action", required=True)
    gi = gs.add_parser("import", help="validate a grid register (CSV) and install it as <data dir>/grids.csv")
    gi.add_argument("file", type=Path, help="CSV: grid_code,community,name,type,households,workers[,since] "
                    "(workers ;-separated; since: the day the grid is owed patrol reports from, default today)")
    gl = gs.add_parser("list", help="the registered grids (of one community)")
    gl.add_argument("--community", default="")


def regions(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "import":
        return import_pack(args.file, args.version, settings)
    if args.action == "list":
        chosen = settings.region_pack or BUNDLED
        packs = [(BUNDLED, bundled_text())] + [(p.stem, p.read_text("utf-8"))
                                                for p in sorted(settings.region_packs.glob("*.csv"))]
        rows = []
        for name, text in packs:
            pack = read_pack(text, name)
            rows.append({"pack": name, "chosen": "*" if name == chosen else "", "units": len(pack.regions),
                         "codes as of": pack.meta.get("codes as of", ""), "source": pack.meta.get("source", "")[:60]})
        print_table(rows)
        return 0
    reg = registry()
    region = reg.get(args.code)
    print(f"{region.code} {reg.full_name(region.code)} ({region.level.value}, {region.status}"
          f"{', synthetic' if region.synthetic else ''})")
    if region.status == "abolished":
        now = reg.current(region.code)
        print(f"  replaced by {now.code} {reg.full_name(now.code)}")
    for level, centre in reg.centres(region.code).items():
        print(f"  {level.value:<10} centre {centre}")
    print(f"  pack {reg.version}: {reg.meta.get('source', '')}")
    return 0


def import_pack(path: Path, version: str | None, settings: Settings) -> int:
    """Validate, carry over the chosen pack's codes it no longer lists (abolished, still resolving),
    and install as ``<data dir>/regions/<version>.csv``."""
    new = read_pack(path.read_text("utf-8"), version or "")
    if not new.version:
        raise ValueError(f"{path}: no version: give --version or a '# pack: NAME' line")
    target = settings.region_packs / f"{new.version}.csv"
    if target.exists() or new.version == BUNDLED:
        raise ValueError(f"a pack {new.version!r} exists already; give the new table a version of its own")
    current = settings.region_pack_path()
    old = read_pack(current.read_text("utf-8") if current else bundled_text(), settings.region_pack or BUNDLED)
    merged, kept = carry_over(new, old, date.today().isoformat())
    settings.region_packs.mkdir(parents=True, exist_ok=True)
    meta = {**new.meta, "pack": new.version, "follows": old.version}
    target.write_text(write_pack(merged.regions, meta), encoding="utf-8")
    read_pack(target.read_text("utf-8"))  # what was written reads back whole
    by_level = Counter(r.level for r in new.regions)
    print(f"installed {target}: " + ", ".join(f"{by_level[lv]} {lv.value}" for lv in Level if by_level[lv])
          + f"; {len(kept)} codes of {old.version} it no longer lists kept as abolished")
    print(f"choose it with FENGQIAO_REGION_PACK={new.version}")
    return 0


def grids(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "import":
        communities = {r.code for r in registry().of_level(Level.community)}
        text = args.file.read_text("utf-8")
        found = read_grids(text, communities)
        target = settings.data_dir / "grids.csv"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if target.exists():  # the register replaced is kept beside it
            target.replace(target.with_name(f"grids-{date.today():%Y%m%d}-{target.stat().st_mtime_ns}.csv"))
        if "# installed:" not in text:  # grids without a since date are on the register from today
            text = f"# installed: {date.today().isoformat()}\n{text}"
        target.write_text(text, encoding="utf-8")
        use_pack(settings.region_pack_path(), target)
        covered = len({g.community for g in found})
        print(f"installed {target}: {len(found)} grids in {covered} communities; reports from any other grid "
              "are refused as unknown_grid from the next start of the worker")
        return 0
    rows = [{"grid": g.code, "name": g.name, "type": g.type, "households": g.households, "workers": len(g.workers)}
            for g in registry().grids.values() if g.community.startswith(args.community)]
    if not registry().grids:
        print("no grid register installed: four synthetic grids per community")
    print_table(rows)
    return 0
