"""Silences (静默, maintenance windows): what a centre asks to stop paging for a time, and the
silence as kept. A silenced signal is stored and shown as silenced; it pages no one.

A silence matches a signal when every matcher it gives matches: the rule (``rule_id``), the
region (a code prefix of any level: the signal's region lies in it), the entity (the signal's
group, e.g. a building key or ``community|person``), the publisher or the device (every input
among the evidence is the publisher's, or was sent by the device: a faulty alarm under repair is
silenced, a grid worker's report beside it still pages). It is bounded by the jurisdiction of
the centre that made it.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.contracts.events import Contract, EventTime

CENTRE_CODE = r"^(\d{4}|\d{6}|\d{9}|\d{12})$"
LONGEST = timedelta(days=30)  # a silence longer than this is a rule that should be changed


class SilenceRequest(Contract):
    """What a centre asks: at least one of rule, entity, publisher or device (a region alone
    would silence a whole place), until when, and why."""

    rule_id: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    region: str | None = Field(default=None, pattern=CENTRE_CODE, description="a division code prefix (4, 6, 9 or "
                               "12 digits) inside the centre's jurisdiction; default: the whole jurisdiction")
    entity: str | None = Field(default=None, min_length=1, max_length=128)
    publisher: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")
    device: str | None = Field(default=None, min_length=1, max_length=128, description="an IoT device's id, as "
                               "its alarms carry it in attributes.device_id")
    starts_at: EventTime | None = Field(default=None, description="default: now")
    ends_at: EventTime
    reason: str = Field(min_length=1, max_length=500, description="why, for the audit (e.g. 消防设施检修)")

    @model_validator(mode="after")
    def says_what_and_how_long(self) -> SilenceRequest:
        if not (self.rule_id or self.entity or self.publisher or self.device):
            raise ValueError("a silence names a rule_id, an entity, a publisher or a device")
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at is not after starts_at")
        return self


class SilenceChange(str, enum.Enum):
    created = "created"
    expired = "expired"


class Silence(BaseModel):
    """A silence as kept on ``silences`` (keyed by its id) and, change by change, in ClickHouse."""

    model_config = ConfigDict(frozen=True)

    silence_id: str
    centre: str = Field(description="the centre that made it: its jurisdiction bounds it")
    rule_id: str | None = None
    region_code: str = Field(description="the region prefix it covers (any level)")
    entity: str | None = None
    publisher: str | None = None
    device: str | None = None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str = Field(description="the operator, key:<id>, or cli:<user>@<host>")
    created_at: datetime
    change: SilenceChange = SilenceChange.created
    changed_by: str = Field(description="who made this change: the creator, or who expired it")
    changed_at: datetime

    def active(self, now: datetime) -> bool:
        return self.change is SilenceChange.created and self.starts_at <= now < self.ends_at
