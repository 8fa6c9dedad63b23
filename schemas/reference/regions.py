"""Region registry (行政区划): statistical division codes, their hierarchy, and the four centres.

Codes are the 12-digit statistical division codes: province(2) city(2) county(2)
township/street(3) village/community(3). Grids (网格) are finer units inside a community and
carry a 15-digit code: the community's 12 digits and a 3-digit grid number.

A comprehensive governance centre (综治中心) is named by the prefix of its level:
city 4 digits, county/district 6, street/township 9, community 12.

The province, city and county rows are real and versioned (``regions/divisions-2024.csv``),
abolished units kept and marked. Streets, communities and grids beneath the active counties
are generated deterministically for the simulator and marked ``synthetic``.
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

TABLE_VERSION = "2024"
SYNTHETIC_VERSION = "synthetic-v1"

# How many synthetic units each parent gets (streets per county, communities per street, grids
# per community). Deterministic so that a code means the same place in every run.
SYNTHETIC_FANOUT = {"township": 6, "community": 6, "grid": 4}


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

    @property
    def prefix(self) -> str:
        """The significant prefix: the centre code for centre levels."""
        return cut(self.code, self.level)


class RegionRegistry:
    """The versioned code table: resolve a code to its unit, ancestors and centres."""

    def __init__(self, regions: list[Region], version: str):
        self.version = version
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
        """The names from the city down, e.g. 大连市中山区模拟街道01模拟社区02; a province's own name."""
        chain = self.ancestors(code)
        return "".join(r.name for r in reversed(chain) if r.level is not Level.province or len(chain) == 1)

    def within(self, code: str, level: Level) -> list[Region]:
        """The active units of ``level`` inside the unit ``code`` (the counties of a city)."""
        prefix = self.get(code).prefix
        return [r for r in self.of_level(level) if r.code.startswith(prefix)]

    def is_within(self, code: str, centre_code: str) -> bool:
        """Whether ``code`` lies inside the jurisdiction of ``centre_code``."""
        return self.get(code).code.startswith(centre_code)


def _synthetic_children(parent: Region, level: Level, count: int) -> list[Region]:
    width = level.digits - parent.level.digits
    label = {Level.township: "模拟街道", Level.community: "模拟社区", Level.grid: "网格"}[level]
    out = []
    for n in range(1, count + 1):
        prefix = parent.prefix + str(n).zfill(width)
        code = prefix if level is Level.grid else pad(prefix)
        name = f"{label}{n:02d}" if level is not Level.grid else f"第{n}{label}"
        out.append(Region(code, name, level, parent.code, synthetic=True))
    return out


def _load_table() -> list[Region]:
    text = resources.files("schemas.reference").joinpath(f"regions/divisions-{TABLE_VERSION}.csv").read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return [
        Region(
            code=row["code"],
            name=row["name"],
            level=Level(row["level"]),
            parent=row["parent"] or None,
            status=row["status"],
            successor=row["successor"] or None,
        )
        for row in rows
    ]


@cache
def registry() -> RegionRegistry:
    """The bundled registry: the real table plus its synthetic streets, communities and grids."""
    regions = _load_table()
    frontier = [r for r in regions if r.level is Level.county and r.status == "active"]
    for level in (Level.township, Level.community, Level.grid):
        generated = [c for p in frontier for c in _synthetic_children(p, level, SYNTHETIC_FANOUT[level.value])]
        regions.extend(generated)
        frontier = generated
    return RegionRegistry(regions, version=f"{TABLE_VERSION}+{SYNTHETIC_VERSION}")
