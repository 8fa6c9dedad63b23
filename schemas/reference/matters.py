"""The admitted matter catalogue (事项清单): which matters a grid may report, from when to when,
and the negative list (负面清单) of matters that may not be handed to grids to handle.

A deployment's own catalogue (``FENGQIAO_MATTERS_FILE``) replaces the bundled ``matters.yaml``;
it has the same form. A matter is written ``code: name`` or ``code: {name, from, until}`` (dates,
``until`` the first day it is no longer admitted). The negative list maps a matter to the reason
it may not be handed down, said to the operator who tries (Dalian art. 21: 清单外事项不得交由网格
协办或者代办; Liaoyuan art. 28: 社区工作事项的负面清单; Shenyang art. 15 准入制度).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class CatalogueError(ValueError):
    """A catalogue file that cannot be used: says which entry and why."""


@dataclass(frozen=True, slots=True)
class Matter:
    code: str
    name: str
    group: str
    group_name: str
    valid_from: date | None = None
    valid_until: date | None = None  # first day no longer admitted

    def admitted_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_until is None or day < self.valid_until)


@dataclass(frozen=True)
class MatterCatalogue:
    version: str
    matters: dict[str, Matter]
    negative: dict[str, str] = field(default_factory=dict)  # 负面清单: code -> why it is not handed to grids
    source: str = "bundled"

    def __contains__(self, code: str) -> bool:
        return code in self.matters

    def get(self, code: str) -> Matter:
        return self.matters[code]

    def in_group(self, group: str) -> list[Matter]:
        return [m for m in self.matters.values() if m.group == group]

    def refusal(self, code: str, day: date) -> str | None:
        """Why a grid may not report ``code`` on ``day`` (None: it may)."""
        matter = self.matters.get(code)
        if matter is None:
            return f"{code} is not on the matter catalogue {self.version}"
        if not matter.admitted_on(day):
            since = f" from {matter.valid_from}" if matter.valid_from else ""
            until = f" until {matter.valid_until}" if matter.valid_until else ""
            return f"{code} ({matter.name}) is admitted{since}{until}, not on {day}"
        return None

    def not_for_grids(self, codes: list[str]) -> list[tuple[str, str]]:
        """(name, reason) of each of ``codes`` on the negative list."""
        return [(self.matters[c].name if c in self.matters else c, self.negative[c]) for c in codes if c in self.negative]


def _day(value: Any, where: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise CatalogueError(f"{where}: {value!r} is not a date like 2026-12-01") from exc


def read_catalogue(text: str, source: str) -> MatterCatalogue:
    """A catalogue's YAML, checked: every matter named, dates in order, the negative list only of
    matters it lists."""
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # a date YAML itself cannot read (2027-13-01)
        raise CatalogueError(f"{source}: cannot be read: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), dict):
        raise CatalogueError(f"{source}: no groups of matters")
    matters: dict[str, Matter] = {}
    for group, spec in doc["groups"].items():
        for code, entry in (spec.get("matters") or {}).items():
            where = f"{source}: {code}"
            entry = entry if isinstance(entry, dict) else {"name": entry}
            if not entry.get("name"):
                raise CatalogueError(f"{where}: no name")
            if code in matters:
                raise CatalogueError(f"{where}: listed twice")
            start, end = _day(entry.get("from"), where), _day(entry.get("until"), where)
            if start and end and end <= start:
                raise CatalogueError(f"{where}: until {end} is not after from {start}")
            matters[code] = Matter(code, str(entry["name"]), group, spec.get("name", group), start, end)
    negative = {str(k): str(v) for k, v in (doc.get("negative_list") or {}).items()}
    unknown = sorted(set(negative) - set(matters))
    if unknown:
        raise CatalogueError(f"{source}: the negative list names matters the catalogue does not: {', '.join(unknown)}")
    return MatterCatalogue(str(doc.get("version", "")), matters, negative, source)


_CHOSEN: Path | None = None
_LOADED: MatterCatalogue | None = None


def use_catalogue(path: Path | None) -> None:
    """Choose this process's catalogue (None: the bundled one): a deployment's file is read and
    checked at once, so that a wrong one stops the start."""
    global _CHOSEN, _LOADED
    _CHOSEN, _LOADED = path, None
    if path is not None:
        catalogue()


def catalogue() -> MatterCatalogue:
    """The deployment's catalogue, or the bundled ``schemas/reference/matters.yaml``."""
    global _LOADED
    if _LOADED is None:
        if _CHOSEN is not None:
            _LOADED = read_catalogue(_CHOSEN.read_text("utf-8"), str(_CHOSEN))
        else:
            _LOADED = read_catalogue(bundled_text(), "bundled")
    return _LOADED


def bundled_text() -> str:
    return resources.files("schemas.reference").joinpath("matters.yaml").read_text("utf-8")
