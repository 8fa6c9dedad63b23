"""Rules as data: the YAML rule pack in ``streams/rules/``, loaded and validated at start.

In the spirit of Sigma correlation rules. Each rule names the events it watches (``filter``,
and for temporal and absence rules named ``conditions``), what it groups them by (fields, a
region code cut to a level), an event-time window, and the level it raises. A wrong rule stops
the start with the file, the line and the reason.

Types:
- ``event_count``: at least ``threshold`` matching events per group within the window;
- ``value_count``: at least ``threshold`` distinct values of ``field`` per group;
- ``temporal``: every condition met (``min_count`` times each) within the window, any order;
- ``temporal_ordered``: the same, in the order the conditions are written;
- ``absence``: after a ``trigger``, no ``expected`` event within ``within`` (optionally only
  where a ``requires`` event was seen before);
- ``register``: the members of a standing register (名册: a person of a special population, a
  grid) must be heard from: ``every`` so often (定点联系, 日常巡查), or ``within`` a time after a
  ``trigger`` covering their place (a weather warning). Registrations stay until deregistered.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from enum import Enum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from schemas.contracts.events import BEIJING, NormalisedEvent, Source
from schemas.contracts.levels import RiskLevel
from schemas.reference.regions import Level, registry

# A signal as another rule would see it, to find chains across the repartition at load time.
PROBE_REGION = "210202001004"
PROBE_TIME = datetime(2026, 1, 1, tzinfo=BEIJING)
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


@cache
def duration_ms(value: timedelta) -> int:
    """A rule's duration in milliseconds, as the windows count time (asked for every event)."""
    return int(value.total_seconds() * 1000)
EVENT_FIELDS = set(NormalisedEvent.model_fields) | {"uid"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(Strict):
    """One field's test: equal to a value, in a list, or starting with a prefix."""

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
        return event.attributes.get(name[11:])
    value = getattr(event, name, None)
    if value is None or type(value) is str:  # most fields: the hot path of every rule's filter
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.value if isinstance(value, Enum) else str(value)


def _known_field(name: str) -> str:
    if name not in EVENT_FIELDS and not name.startswith("attributes."):
        raise ValueError(f"unknown field {name!r}")
    return name


FieldName = Annotated[str, BeforeValidator(_known_field)]


class Filter(Strict):
    """All of its field conditions must hold. Written as ``{field: value | [values] | {prefix: …}}``."""

    fields: dict[FieldName, Annotated[Condition, BeforeValidator(_condition)]]

    @model_validator(mode="before")
    @classmethod
    def wrap(cls, value: Any) -> Any:
        return value if isinstance(value, dict) and set(value) == {"fields"} else {"fields": value or {}}

    def admits(self, source: Source, category: str) -> bool:
        """Whether an event of this source and category can match at all."""
        for name, value in (("source", source.value), ("category", category)):
            cond = self.fields.get(name)
            if cond is not None and not cond.test(value):
                return False
        return True

    def matches(self, event: NormalisedEvent) -> bool:
        for name, cond in self.fields.items():  # a loop, not all(<genexpr>): run for every rule and event
            if not cond.test(field_value(event, name)):
                return False
        return True


class GroupKey(Strict):
    """One part of a group: a field, cut to a region level when it is a region code."""

    field: FieldName = "region_code"
    level: Level | None = Field(default=None, description="cut a region code to this level")

    def values(self, event: NormalisedEvent) -> list[str]:
        """Usually one value; a list field (``subjects``) gives one group per element."""
        if self.field == "subjects":
            return list(event.subjects)
        value = field_value(event, self.field)
        if value is None or value == "":
            return []
        if self.level and self.field == "region_code" and _coarser(value, self.level):
            return []  # a district's event is no community of its own (an absence trigger reaches places)
        return [value[: self.level.digits] if self.level else value]


def _coarser(code: str, level: Level) -> bool:
    """Whether the unit ``code`` names is wider than ``level`` (a district for a community rule)."""
    return code in registry() and registry().get(code).level.digits < level.digits


def _group_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) else value  # YAML's 7, 2.5, true as the text they were


Text = Annotated[str, BeforeValidator(_text)]


class CaseEvent(Strict):
    """One event of a rule case, ``at`` a time after the case's base time."""

    at: Duration = timedelta(0)
    source: Source = Source.grid_report
    category: str
    region: Text
    grid: Text | None = None
    id: str | None = None
    publisher: str | None = None
    level: RiskLevel | None = None
    subjects: tuple[Text, ...] = ()
    attributes: dict[str, Text] = Field(default_factory=dict)
    drill: bool = False


class ExpectedSignal(Strict):
    """A signal a case expects of its rule, by level and entity; ``answered``: found answered in
    time after it was raised (迟到回应: the answer came late)."""

    level: RiskLevel
    entity: Text
    answered: bool = False


class RuleCase(Strict):
    """A rule's test case (规则用例): events in, the signals of its own rule expected (none: a near
    miss). ``until`` moves event time on past the last event, so that absence deadlines fall due."""

    name: str
    events: list[CaseEvent] = Field(min_length=1)
    until: Duration | None = None
    expect: list[ExpectedSignal] = Field(default_factory=list)


class RuleBase(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1, description="Chinese name operators read")
    basis: str = Field(min_length=1, description="the article of the regulations it serves")
    filter: Filter = Field(default_factory=lambda: Filter(fields={}))
    group_by: Annotated[list[GroupKey], BeforeValidator(_group_list)] = Field(min_length=1)
    window: Duration
    allowed_lateness: Duration = Field(default=timedelta(0), description="how late an event may still count")
    level: RiskLevel
    takes_level: bool = Field(default=False, description="the signal takes the highest level its own evidence "
                              "carries (a department's red or orange, a CAP alert's), never less than level")
    uplift: int = Field(default=0, ge=0, le=3, description="levels added when a chained signal is evidence")
    summary: str = Field(description="format string: {place} {count} {window_hours} {window_days} {rule}")
    max_evidence: int = Field(default=50, ge=1)
    risk_score: int = Field(default=0, ge=0, le=100, description="added to its risk objects per signal")
    sensitive: bool = Field(default=False, description="minimal detail in notices (e.g. 心理危机)")
    tests: list[RuleCase] = Field(default_factory=list, description="cases for fengqiao rules test")

    @property
    def window_ms(self) -> int:
        return duration_ms(self.window)

    @property
    def fingerprint(self) -> str:
        """The rule's version: a digest of what it does (not of its name, basis, summary or cases).
        Every signal carries it; a rule whose fingerprint changes starts with fresh windows.
        Computed each time, not cached: a copy with a changed field is another version."""
        definition = self.model_dump_json(exclude={"tests", "name", "basis", "summary"})
        return hashlib.sha256(definition.encode()).hexdigest()[:8]

    @property
    def late_ms(self) -> int:
        return duration_ms(self.allowed_lateness)

    def groups(self, event: NormalisedEvent) -> list[str]:
        """The group keys of an event. A region code at county level or below lives in its
        county's partition of the events topic; a key that is not a region code (a person, an
        address) is tied to the event's county to live there too; a region coarser than a county
        (a city) is a regional group, held on the regional events topic by its own key."""
        keys = [""]
        for part in self.group_by:
            keys = [f"{k}|{v}" if k else v for k in keys for v in part.values(event)]
        county = event.region_code[: Level.county.digits]
        return [k if self.within_county or self.regional else f"{county}|{k}" for k in keys if k]

    @property
    def within_county(self) -> bool:
        first = self.group_by[0]
        return first.field == "region_code" and (first.level is None or first.level.digits >= Level.county.digits)

    @property
    def regional(self) -> bool:
        """Grouped by a region coarser than a county (城市级): evaluated after a repartition."""
        first = self.group_by[0]
        return first.field == "region_code" and first.level is not None and first.level.digits < Level.county.digits

    def tag(self, event: NormalisedEvent) -> str | None:
        """What the event is to this rule (a condition's name, a counted value), or None."""
        return "" if self.filter.matches(event) else None

    def alternatives(self) -> list[Filter]:
        """The filters of which one must match besides ``filter`` (a temporal rule's conditions)."""
        return []

    def admits(self, source: Source, category: str) -> bool:
        """Whether an event of this source and category can be anything to the rule: the
        correlator asks each rule once per (source, category), not each event."""
        alternatives = self.alternatives()
        return self.filter.admits(source, category) and (
            not alternatives or any(f.admits(source, category) for f in alternatives))


class EventCountRule(RuleBase):
    type: Literal["event_count"]
    threshold: int = Field(ge=1)


class ValueCountRule(RuleBase):
    type: Literal["value_count"]
    field: FieldName
    threshold: int = Field(ge=2)

    def tag(self, event: NormalisedEvent) -> str | None:
        return field_value(event, self.field) if self.filter.matches(event) else None


class NamedCondition(Strict):
    where: Filter
    min_count: int = Field(default=1, ge=1)


class TemporalRule(RuleBase):
    type: Literal["temporal", "temporal_ordered"]
    conditions: dict[str, NamedCondition] = Field(min_length=2)

    def tag(self, event: NormalisedEvent) -> str | None:
        if not self.filter.matches(event):
            return None
        return next((name for name, c in self.conditions.items() if c.where.matches(event)), None)

    def alternatives(self) -> list[Filter]:
        return [c.where for c in self.conditions.values()]


class AbsenceRule(RuleBase):
    type: Literal["absence"]
    trigger: Filter
    expected: Filter
    within: Duration
    requires: Filter | None = Field(default=None, description="only where such an event was seen in the window")
    cancelled_by: Filter | None = Field(default=None, description="an event that withdraws earlier triggers (a CAP "
                                        "Cancel or Update): the checks pending for what its `cancels` names end")
    cancels: FieldName = Field(default="attributes.references_resolved",
                               description="the field naming what a cancelling event withdraws (';'-separated), "
                               "each in place of the group's last part")
    partial: Filter | None = Field(default=None, description="an event that answers a trigger in part (a terminal "
                                   "group's receipt): parts within the deadline that add up answer it whole")
    adds_up: tuple[FieldName, FieldName] = Field(default=("attributes.terminals_played", "attributes.terminals_total"),
                                                 description="a partial event's (part, whole) fields")

    @property
    def within_ms(self) -> int:
        return duration_ms(self.within)

    def cancelled_groups(self, event: NormalisedEvent) -> list[str]:
        """The groups whose pending checks ``event`` withdraws (none if it cancels nothing)."""
        if self.cancelled_by is None or not self.filter.matches(event) or not self.cancelled_by.matches(event):
            return []
        last = self.group_by[-1].field.removeprefix("attributes.")
        withdrawn = [ref for ref in (field_value(event, self.cancels) or "").split(";") if ref]
        return sorted({g for ref in withdrawn
                       for g in self.groups(event.model_copy(update={"attributes": {**event.attributes, last: ref}}))})

    @model_validator(mode="after")
    def placed_and_long_enough(self) -> AbsenceRule:
        if self.group_by[0].field != "region_code":
            raise ValueError("an absence rule groups by region_code first: its signal is about a place")
        if self.window < self.within:
            raise ValueError("window must be at least within, so the trigger is still held when it is due")
        if self.cancelled_by is not None and not self.group_by[-1].field.startswith("attributes."):
            raise ValueError("cancelled_by needs a group whose last part is an attribute naming what is withdrawn")
        return self

    def tag(self, event: NormalisedEvent) -> str | None:
        if not self.filter.matches(event):
            return None
        for name, f in (("trigger", self.trigger), ("expected", self.expected), ("requires", self.requires)):
            if f is not None and f.matches(event):
                return name
        if self.partial is not None and self.partial.matches(event):
            part, whole = (field_value(event, f) or "" for f in self.adds_up)
            if part.isdigit() and whole.isdigit():
                return f"part:{part}:{whole}"
        return None

    def alternatives(self) -> list[Filter]:
        return [f for f in (self.trigger, self.expected, self.requires, self.cancelled_by, self.partial)
                if f is not None]


class Interval(Strict):
    """How long a member of a register may go unheard: one duration, or one per kind of member
    (the value of ``field`` in its registration: 独居老人 weekly, 低保 quarterly)."""

    field: FieldName | None = None
    default: Duration | None = None
    by: dict[str, Duration] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def plain(cls, value: Any) -> Any:
        return {"default": value} if isinstance(value, str | timedelta) else value

    @model_validator(mode="after")
    def says_how_long(self) -> Interval:
        if self.default is None and not (self.field and self.by):
            raise ValueError("give a duration, or a field and a duration for each of its values")
        return self

    def of(self, kinds: list[str]) -> int | None:
        """Milliseconds: the shortest interval of the kinds a member is registered as (None: no
        kind this rule keeps)."""
        found = [self.by.get(k, self.default) for k in kinds]
        durations = [duration_ms(d) for d in found if d is not None]
        return min(durations) if durations else None

    @property
    def longest(self) -> timedelta:
        return max([d for d in (self.default, *self.by.values()) if d is not None])


class RegisterRule(RuleBase):
    """名册规则: every member of a standing register must be heard from. A ``registers`` event
    enters its group (a person in a community, a grid) as a member of the kind its ``kind``
    field names; a ``deregisters`` event of that kind takes it out; an ``expected`` event is
    hearing from it (a visit naming the person, a report from the grid). With ``every``, a
    member unheard for its interval raises a signal (定点联系, 日常巡查); with ``trigger`` and
    ``within``, each member inside the trigger's area must be heard from within that time (a
    visit to one person answers for no other)."""

    type: Literal["register"]
    registers: Filter
    deregisters: Filter | None = None
    kind: FieldName | None = Field(default=None, description="the registration's field naming what the member "
                                   "is registered as (attributes.population); a member may be several")
    expected: Filter
    every: Interval | None = None
    trigger: Filter | None = None
    within: Duration | None = None
    grid_register: bool = Field(default=False, description="the grids of the installed grid register are "
                                "members from the day their register says (网格台账), besides any registered "
                                "by events")

    @model_validator(mode="after")
    def one_kind_of_deadline(self) -> RegisterRule:
        if self.group_by[0].field != "region_code":
            raise ValueError("a register rule groups by region_code first: its signal is about a place")
        if (self.every is None) == (self.trigger is None):
            raise ValueError("give either every (a member unheard so long) or trigger and within")
        if self.trigger is not None and self.within is None:
            raise ValueError("a trigger needs within: how soon each member must be heard from")
        longest = self.every.longest if self.every else self.within
        if longest is not None and self.window < longest:
            raise ValueError("window must be at least the longest interval, so the last contact is still held")
        return self

    @property
    def within_ms(self) -> int:
        return duration_ms(self.within) if self.within else 0

    def tag(self, event: NormalisedEvent) -> str | None:
        """``registered:KIND``, ``deregistered:KIND``, ``expected`` or ``trigger``."""
        if not self.filter.matches(event):
            return None
        for name, f in (("registered", self.registers), ("deregistered", self.deregisters)):
            if f is not None and f.matches(event):
                return f"{name}:{(field_value(event, self.kind) or '') if self.kind else ''}"
        if self.expected.matches(event):
            return "expected"
        if self.trigger is not None and self.trigger.matches(event):
            return "trigger"
        return None

    def alternatives(self) -> list[Filter]:
        return [f for f in (self.registers, self.deregisters, self.expected, self.trigger) if f is not None]


def reaches_places(rule: Any, tag: str) -> bool:
    """Whether an event so tagged concerns the places held under its area rather than its own
    groups: an absence trigger where a ``requires`` record is kept, a register rule's trigger."""
    return tag == "trigger" and (isinstance(rule, RegisterRule) or
                                 (isinstance(rule, AbsenceRule) and rule.requires is not None))


Rule = Annotated[Union[EventCountRule, ValueCountRule, TemporalRule, AbsenceRule, RegisterRule],
                 Field(discriminator="type")]
_RULE = TypeAdapter(Rule)


class RuleError(ValueError):
    """A rule file that cannot be loaded: names the file, the line and the reason."""


def _line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The line (1-based) of the deepest YAML node along ``loc`` that exists."""
    line = node.start_mark.line + 1 if node else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def load_rule(path: Path | Any) -> Any:
    name = getattr(path, "name", str(path))
    text = path.read_text("utf-8")
    try:
        node = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RuleError(f"{name}:{mark.line + 1 if mark else 1}: not valid YAML: {exc}") from exc
    try:
        return _RULE.validate_python(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = tuple(first["loc"])
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = ("type",)
        elif loc and isinstance(doc, dict) and loc[0] == doc.get("type"):
            loc = loc[1:]  # the union's tag
        loc = tuple(p for p in loc if p not in ("fields", "[key]"))  # the Filter wrapper's own parts
        where = ".".join(str(p) for p in loc)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise RuleError(f"{name}:{_line(node, loc)}: {where}: {message}") from exc


def rules_directory(directory: Path | None = None) -> Any:
    return directory or resources.files("streams.detection").joinpath("rules")


def rule_files_signature(directory: Path | None = None) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the rule files: a change means reload."""
    root = Path(str(rules_directory(directory)))
    try:
        return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in root.glob("*.yaml")))
    except OSError:
        return ()


INFORMATIONAL = "informational.yaml"  # a pack's list of the categories no rule reads on purpose


def load_rules(directory: Path | None = None) -> list[Any]:
    """Every ``*.yaml`` rule in the pack (the bundled one unless a directory is given)."""
    root = rules_directory(directory)
    files = sorted((f for f in root.iterdir() if f.name.endswith(".yaml") and f.name != INFORMATIONAL),
                   key=lambda f: f.name)
    rules = [load_rule(f) for f in files]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RuleError(f"rule id {rule.id!r} appears twice")
        seen.add(rule.id)
    check_chains(rules)
    return rules


def split_pack(rules: list[Any]) -> tuple[list[Any], list[Any]]:
    """(rules evaluated in the county partitions of events, regional rules after repartition)."""
    return [r for r in rules if not r.regional], [r for r in rules if r.regional]


def check_chains(rules: list[Any]) -> None:
    """A rule may chain only from signals raised on its own side of the repartition."""
    local, regional = split_pack(rules)
    for takers, givers in ((local, regional), (regional, local)):
        for giver in givers:
            probe = NormalisedEvent(event_id="probe", publisher="signal", source=Source.signal,
                                    category=f"signal.{giver.id}", region_code=PROBE_REGION,
                                    occurred_at=PROBE_TIME, ingested_at=PROBE_TIME, level=giver.level)
            for taker in takers:
                if taker.tag(probe) is not None:
                    side = "city-wide" if taker.regional else "county-level"
                    raise RuleError(f"{taker.id}: a {side} rule cannot take {giver.id}'s signals: they are "
                                    "raised on the other side of the repartition")


class Informational(Strict):
    """仅供知悉: the categories of each source that no rule of the pack looks for a pattern of its
    own in, each with why (the pack's ``informational.yaml``)."""

    dept_alert: dict[str, str] = Field(default_factory=dict)
    grid_report: dict[str, str] = Field(default_factory=dict)

    def of(self, source: Source) -> dict[str, str]:
        return {Source.dept_alert: self.dept_alert, Source.grid_report: self.grid_report}[source]


def load_informational(directory: Path | None = None) -> Informational:
    """The pack's informational list (none when the pack has no ``informational.yaml``)."""
    path = rules_directory(directory).joinpath(INFORMATIONAL)
    if not path.is_file():
        return Informational()
    try:
        return Informational.model_validate(yaml.safe_load(path.read_text("utf-8")) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise RuleError(f"{INFORMATIONAL}: {exc}") from exc


def unread(rules: list[Any], informational: Informational, categories: dict[Source, list[str]]) -> list[str]:
    """What the pack leaves unsaid, one line each: a category that only its general rules take
    (those that take every category of its source: the urgent ones, the patrol) and that is not
    named informational; one named informational that a rule reads after all; one named that
    its source does not have."""
    problems = []
    for source, known in categories.items():
        general = {r.id for r in rules if known and all(r.admits(source, c) for c in known)}
        named = informational.of(source)
        for category in known:
            readers = sorted(r.id for r in rules if r.id not in general and r.admits(source, category))
            if not readers and category not in named:
                problems.append(f"{source.value} {category}: read by no rule of its own and not named in {INFORMATIONAL}")
            if readers and category in named:
                problems.append(f"{source.value} {category}: named in {INFORMATIONAL} but read by {', '.join(readers)}")
        problems += [f"{source.value} {c}: named in {INFORMATIONAL} but not a category of {source.value}"
                     for c in sorted(set(named) - set(known))]
    return problems


def published_categories() -> dict[Source, list[str]]:
    """Every category a department may publish, and every grid matter of the deployment's
    catalogue (事项清单)."""
    from schemas.contracts.alerts import departments
    from schemas.reference.matters import catalogue

    return {Source.dept_alert: [f"{code}.{c}" for code, d in sorted(departments().items()) for c in d.categories],
            Source.grid_report: sorted(catalogue().matters)}
