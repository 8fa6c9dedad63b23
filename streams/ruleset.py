"""Rules as data: the YAML rule pack in ``streams/rules/``, loaded and validated at start.

A wrong rule stops the start with the file and the reason. A rule says which events it
watches (filter), what it groups them by (a field, or a region code cut to a level), over
what event-time window, and what level of signal it raises.
"""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from schemas.events import NormalisedEvent
from schemas.levels import RiskLevel
from schemas.regions import Level

_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: Any) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ValueError(f"duration {value!r} is not like 30m, 24h or 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Condition(BaseModel):
    """One field's test: equal to a value, in a list, or starting with a prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    equals: str | None = None
    any_of: tuple[str, ...] | None = None
    prefix: str | None = None

    def test(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.equals is not None and value != self.equals:
            return False
        if self.any_of is not None and value not in self.any_of:
            return False
        return self.prefix is None or value.startswith(self.prefix)


def _condition(value: Any) -> Any:
    if isinstance(value, str):
        return {"equals": value}
    if isinstance(value, list):
        return {"any_of": tuple(value)}
    return value


def field_value(event: NormalisedEvent, name: str) -> str | None:
    """A field of an event by name; ``attributes.X`` reaches into the attributes."""
    if name.startswith("attributes."):
        return event.attributes.get(name.removeprefix("attributes."))
    value = getattr(event, name, None)
    if value is None:
        return None
    return value.value if hasattr(value, "value") else str(value)


class GroupBy(BaseModel):
    """What a rule groups by: a field, cut to a region level when it is a region code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = "region_code"
    level: Level | None = Field(default=None, description="cut a region code to this level")

    def key(self, event: NormalisedEvent) -> str | None:
        value = field_value(event, self.field)
        if value is not None and self.level is not None:
            value = value[: self.level.digits]
        return value


EVENT_FIELDS = set(NormalisedEvent.model_fields)


class Rule(BaseModel):
    """One correlation rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1, description="Chinese name operators read")
    basis: str = Field(min_length=1, description="the article of the regulations it serves")
    type: Literal["event_count"]
    filter: dict[str, Annotated[Condition, BeforeValidator(_condition)]]
    group_by: GroupBy
    window: Duration
    threshold: int = Field(ge=1)
    level: RiskLevel
    summary: str = Field(description="format string: {place} {count} {window_hours} {rule}")
    max_evidence: int = Field(default=50, ge=1)

    @field_validator("filter")
    @classmethod
    def known_fields(cls, value: dict[str, Condition]) -> dict[str, Condition]:
        for name in value:
            if name not in EVENT_FIELDS and not name.startswith("attributes."):
                raise ValueError(f"filter on unknown field {name!r}")
        return value

    def matches(self, event: NormalisedEvent) -> bool:
        return all(cond.test(field_value(event, name)) for name, cond in self.filter.items())


class RuleError(ValueError):
    """A rule file that cannot be loaded: names the file and the reason."""


def load_rule(path: Path | Any) -> Rule:
    name = getattr(path, "name", str(path))
    try:
        doc = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise RuleError(f"{name}: not valid YAML: {exc}") from exc
    try:
        return Rule.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RuleError(f"{name}: {where}: {first['msg']}") from exc


def load_rules(directory: Path | None = None) -> list[Rule]:
    """Every ``*.yaml`` rule in the pack (the bundled one unless a directory is given)."""
    root = directory or resources.files("streams").joinpath("rules")
    files = sorted((f for f in root.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    rules = [load_rule(f) for f in files]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RuleError(f"rule id {rule.id!r} appears twice")
        seen.add(rule.id)
    return rules
