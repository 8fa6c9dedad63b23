"""The admitted matter catalogue (事项清单): which matters a grid may report and handle."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml


@dataclass(frozen=True, slots=True)
class Matter:
    code: str
    name: str
    group: str
    group_name: str


@dataclass(frozen=True)
class MatterCatalogue:
    version: str
    matters: dict[str, Matter]

    def __contains__(self, code: str) -> bool:
        return code in self.matters

    def get(self, code: str) -> Matter:
        return self.matters[code]

    def in_group(self, group: str) -> list[Matter]:
        return [m for m in self.matters.values() if m.group == group]


@cache
def catalogue() -> MatterCatalogue:
    """The bundled catalogue, ``schemas/matters.yaml``."""
    doc = yaml.safe_load(resources.files("schemas.reference").joinpath("matters.yaml").read_text("utf-8"))
    matters = {
        code: Matter(code, name, group, spec["name"])
        for group, spec in doc["groups"].items()
        for code, name in spec["matters"].items()
    }
    return MatterCatalogue(str(doc["version"]), matters)
