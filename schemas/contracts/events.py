"""Input contracts and the internal normalised event.

Publishers read the JSON Schema exported from these models. Every input carries an
``event_id`` unique for its publisher, an ``occurred_at`` event time (timezone-aware; a time
without an offset is read as Beijing time, +08:00) and a region code.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from schemas.contracts.levels import RiskLevel
from schemas.reference.matters import catalogue
from schemas.reference.regions import Level, registry

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


EARLIEST = datetime(2000, 1, 1, tzinfo=BEIJING)


def iso_text(value: object) -> object:
    """Event times are ISO 8601 text: a bare number would be read as a Unix timestamp, in
    seconds or milliseconds nobody can tell, so it is refused."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("an event time is ISO 8601 text such as 2026-11-21T09:00:00+08:00, not a number")
    return value


def assume_beijing(value: datetime) -> datetime:
    """Event times without an offset are Beijing time (+08:00); none is before 2000."""
    value = value if value.tzinfo else value.replace(tzinfo=BEIJING)
    if value < EARLIEST:
        raise ValueError(f"event time {value.isoformat()} is before 2000")
    return value


# ISO 8601 text, none before 2000: the schema's pattern asks for 2001 on, which no offset can take
# back before 2000 (2000-01-01T00:00+18:29 is 1999 in Beijing).
EventTime = Annotated[datetime, BeforeValidator(iso_text), AfterValidator(assume_beijing),
                      Field(json_schema_extra={"pattern": r"^(?:200[1-9]|20[1-9]\d|2[1-9]\d\d)-"})]
EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]


def known_region(code: str) -> str:
    if code not in registry():
        raise ValueError(f"unknown region code {code}")
    region = registry().get(code)
    if region.status != "active":
        raise ValueError(f"region code {code} ({region.name}) is abolished; use {region.successor}")
    return code


def code_pattern(digits: int) -> str:
    """The pattern of a code of ``digits`` digits inside the counties the registry holds, or (a
    region code) naming one of its cities or provinces whole, so that a publisher's schema refuses
    a code of another place before fengqiao does (the registry's units below the county are
    checked at validation, as ``unknown_region``)."""
    def prefixes(level: Level) -> str:
        return "|".join(sorted(r.prefix for r in registry().of_level(level, active_only=False)))

    within = rf"(?:{prefixes(Level.county)})\d{{{digits - Level.county.digits}}}"
    if digits != 12:
        return rf"^{within}$"
    return rf"^(?:{within}|(?:{prefixes(Level.city)})0{{8}}|(?:{prefixes(Level.province)})0{{10}})$"


def known_grid(code: str) -> str:
    """A grid of the deployment's grid register (or, with none installed, a synthetic one)."""
    if code not in registry():
        raise ValueError(f"unknown grid {code}: not in the grid register")
    return code


def _in_registry(digits: int):  # noqa: ANN202
    """The schema's pattern, from the region pack in use when the schema is made."""
    def extra(schema: dict) -> None:
        schema["pattern"] = code_pattern(digits)
    return extra


# Validation checks the form here and the unit in the registry (which a deployment chooses at
# start); the published schema carries the registry's counties as its pattern.
RegionCode = Annotated[str, Field(pattern=r"^\d{12}$", json_schema_extra=_in_registry(12)), AfterValidator(known_region)]
GridCode = Annotated[str, Field(pattern=r"^\d{15}$", json_schema_extra=_in_registry(15)), AfterValidator(known_grid)]


class Contract(BaseModel):
    """Base of every contract: unknown fields are refused so that typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Party(Contract):
    """A party to a matter (当事人). Identifiers are pseudonymised at validation."""

    name: str = Field(min_length=1, max_length=64)
    id_number: str | None = Field(default=None, description="18-digit resident ID number")
    phone: str | None = None
    role: str | None = Field(default=None, max_length=32, description="e.g. 申请人, 被申请人")


class Location(Contract):
    region_code: RegionCode = Field(description="12-digit division code of the community")
    address: str | None = Field(default=None, max_length=256)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class GridReport(Contract):
    """网格员上报: a grid worker's report from the grid app back-end."""

    schema_version: Literal[1] = 1
    event_id: EventId
    grid_code: GridCode = Field(description="15-digit grid code: community code + 3-digit grid number")
    reporter: str = Field(min_length=1, max_length=64, description="grid worker id (网格员编号)")
    category: str = Field(
        description="matter code from the admitted matter catalogue (事项清单, schemas/matters.yaml)",
        json_schema_extra={"enum": sorted(catalogue().matters)},
    )
    parties: list[Party] = Field(default_factory=list, max_length=50)
    location: Location
    text: str = Field(default="", max_length=4000)
    attachments: list[str] = Field(default_factory=list, max_length=20)
    severity_hint: RiskLevel | None = None
    occurred_at: EventTime
    drill: bool = Field(default=False, description="an exercise or a test (演练): stored, never pages a live centre")

    @field_validator("category")
    @classmethod
    def admitted(cls, code: str) -> str:
        if code not in catalogue():
            raise ValueError("not_in_catalogue")
        return code

    @model_validator(mode="after")
    def grid_inside_location(self) -> GridReport:
        if self.grid_code[:12] != self.location.region_code:
            raise ValueError("location.region_code is not the community of grid_code")
        refusal = catalogue().refusal(self.category, self.occurred_at.astimezone(BEIJING).date())
        if refusal:  # a matter admitted for a time, reported outside it
            raise ValueError(f"not_in_catalogue: {refusal}")
        return self


class Source(str, enum.Enum):
    grid_report = "grid_report"
    broadcast = "broadcast"
    broadcast_receipt = "broadcast_receipt"
    dept_alert = "dept_alert"
    signal = "signal"  # a raised signal taken as evidence by a chained rule
    register = "register"  # a member of an installed register (网格台账): reference data, not an event


class Identity(BaseModel):
    """The identifiers one person was named by in one event, as pseudonyms only (never in clear):
    what links one person across sources (同人关联, ``streams.intake.linking``)."""

    model_config = ConfigDict(frozen=True)

    id_number: str | None = Field(default=None, description="pseudonym of a valid resident ID number")
    mobile: str | None = Field(default=None, description="pseudonym of a mobile number")
    name: str = Field(description="pseudonym of the name within its community")

    @property
    def strongest(self) -> str:
        """The pseudonym a person is known by before any link: ID number, else mobile, else name."""
        return self.id_number or self.mobile or self.name


class NormalisedEvent(BaseModel):
    """The one internal event every input becomes, pseudonymised, on the ``events`` topic."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    event_id: str
    publisher: str = Field(description="grid back-end or department code")
    source: Source
    category: str
    region_code: str = Field(description="12-digit division code")
    grid_code: str | None = None
    occurred_at: datetime
    ingested_at: datetime
    level: RiskLevel | None = None
    subjects: list[str] = Field(default_factory=list, description="pseudonyms of the people involved, each "
                                "by their strongest identifier (ID number, mobile, name)")
    identities: list[Identity] = Field(default_factory=list, description="per person named, every identifier "
                                       "pseudonym given for them: how the correlator links one person across sources")
    text: str = Field(default="", description="free text with identifiers masked")
    attributes: dict[str, str] = Field(default_factory=dict)
    drill: bool = Field(default=False, description="exercise or test (演练): never pages a live centre")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def uid(self) -> str:
        """Globally unique: event ids are unique per publisher."""
        return f"{self.publisher}:{self.event_id}"

    @property
    def partition_key(self) -> bytes:
        """Events are keyed by county: every grouping at or below a county is co-partitioned."""
        return self.region_code[: Level.county.digits].encode()

    def reach(self) -> list[str]:
        """The counties (6 digits) an event about a wider region (a city, a province) covers, each
        holding places of its own in its partition; none for a county or anything inside one."""
        known = registry()
        if self.region_code not in known or known.get(self.region_code).level.digits >= Level.county.digits:
            return []
        return [c.prefix for c in known.within(self.region_code, Level.county)]
