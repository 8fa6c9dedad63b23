"""Emergency broadcasts (应急广播) as CAP 1.2 alerts, and terminal delivery receipts.

The JSON form mirrors CAP 1.2 element for element (``msgType``, ``info``, ``area``,
``geocode``…); CAP XML is parsed into the same form by ``schemas.cap``. Areas are placed by
their geocodes, 6- or 12-digit division codes: polygons and circles are kept but do not place
an area by themselves.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from schemas.contracts.events import Contract, EventId, EventTime, known_region
from schemas.contracts.levels import RiskLevel
from schemas.reference.regions import pad


class CapStatus(str, enum.Enum):
    actual = "Actual"
    exercise = "Exercise"  # 演练: never pages a live centre
    test = "Test"


class CapMsgType(str, enum.Enum):
    alert = "Alert"
    update = "Update"
    cancel = "Cancel"


class CapSeverity(str, enum.Enum):
    extreme = "Extreme"
    severe = "Severe"
    moderate = "Moderate"
    minor = "Minor"
    unknown = "Unknown"


SEVERITY_LEVEL = {
    CapSeverity.extreme: RiskLevel.red,
    CapSeverity.severe: RiskLevel.orange,
    CapSeverity.moderate: RiskLevel.yellow,
    CapSeverity.minor: RiskLevel.blue,
}
LEVEL_PARAMETERS = {"预警级别", "预警颜色", "level", "colour", "color"}
LEVEL_WORDS = {
    **{lv.value: lv for lv in RiskLevel},
    **{lv.chinese: lv for lv in RiskLevel},
    **{lv.roman: lv for lv in RiskLevel},
    **{lv.chinese.removesuffix("色"): lv for lv in RiskLevel},
}


def division_code(code: str) -> str:
    """A 6- or 12-digit division code as a known 12-digit code."""
    if len(code) not in (6, 12) or not code.isdigit():
        raise ValueError(f"geocode {code!r} is not a 6- or 12-digit division code")
    return known_region(pad(code))


class Cap(Contract):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ValuePair(Cap):
    value_name: str = Field(alias="valueName", min_length=1, max_length=128)
    value: str = Field(max_length=1024)


class Geocode(Cap):
    value_name: str = Field(alias="valueName", min_length=1, max_length=128)
    value: Annotated[str, AfterValidator(division_code)]


class Area(Cap):
    area_desc: str = Field(alias="areaDesc", min_length=1, max_length=512)
    polygon: list[str] = Field(default_factory=list, max_length=100)
    circle: list[str] = Field(default_factory=list, max_length=100)
    geocode: list[Geocode] = Field(min_length=1, description="at least one division code places the area")


class Info(Cap):
    language: str = "zh-CN"
    category: list[str] = Field(min_length=1)
    event: str = Field(min_length=1, max_length=256)
    urgency: str
    severity: CapSeverity
    certainty: str
    sender_name: str | None = Field(default=None, alias="senderName")
    headline: str | None = Field(default=None, max_length=512)
    description: str | None = Field(default=None, max_length=8000)
    instruction: str | None = Field(default=None, max_length=4000)
    effective: EventTime | None = None
    onset: EventTime | None = None
    expires: EventTime | None = None
    parameter: list[ValuePair] = Field(default_factory=list, max_length=50)
    area: list[Area] = Field(min_length=1)

    @property
    def level(self) -> RiskLevel | None:
        """The four colours from a level parameter, else mapped from CAP severity."""
        for p in self.parameter:
            if p.value_name in LEVEL_PARAMETERS and p.value.strip() in LEVEL_WORDS:
                return LEVEL_WORDS[p.value.strip()]
        return SEVERITY_LEVEL.get(self.severity)


def _what_each_message_type_needs(schema: dict) -> None:
    """What ``references_and_info`` checks, in the JSON Schema: an Update or a Cancel names the
    alerts it refers to (each "sender,identifier,sent"); an Alert or an Update has an info block."""
    schema["allOf"] = [
        {"if": {"properties": {"msgType": {"enum": ["Update", "Cancel"]}}, "required": ["msgType"]},
         "then": {"required": ["references"], "properties": {"references": {"minItems": 1}}}},
        {"if": {"properties": {"msgType": {"enum": ["Alert", "Update"]}}, "required": ["msgType"]},
         "then": {"required": ["info"], "properties": {"info": {"minItems": 1}}}},
    ]
    schema["properties"]["references"]["items"] = {"type": "string", "pattern": r"^[^,]*,[^,]*,[^,]*$"}


class EmergencyBroadcast(Cap):
    """应急广播: a CAP 1.2 alert."""

    model_config = ConfigDict(**Cap.model_config, json_schema_extra=_what_each_message_type_needs)

    schema_version: Literal[1] = 1
    identifier: EventId
    sender: str = Field(min_length=1, max_length=256)
    sent: EventTime
    status: CapStatus
    msg_type: CapMsgType = Field(alias="msgType")
    scope: Literal["Public", "Restricted", "Private"] = "Public"
    source: str | None = None
    note: str | None = Field(default=None, max_length=4000)
    references: list[str] = Field(default_factory=list, description='earlier alerts, each "sender,identifier,sent"')
    incidents: str | None = None
    info: list[Info] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def references_and_info(self) -> EmergencyBroadcast:
        if self.msg_type is not CapMsgType.alert and not self.references:
            raise ValueError(f"a {self.msg_type.value} must name the alerts it refers to in references")
        for ref in self.references:
            if len(ref.split(",")) != 3:
                raise ValueError(f"reference {ref!r} is not sender,identifier,sent")
        if self.msg_type is not CapMsgType.cancel and not self.info:
            raise ValueError(f"a {self.msg_type.value} needs at least one info block")
        return self

    @property
    def drill(self) -> bool:
        return self.status is not CapStatus.actual

    def referenced(self) -> list[str]:
        """The earlier alerts as ``sender,identifier`` keys."""
        return [",".join(ref.split(",")[:2]) for ref in self.references]

    @property
    def key(self) -> str:
        return f"{self.sender},{self.identifier}"


class BroadcastReceipt(Contract):
    """Terminal delivery receipt (终端播发回执): which area's terminals played which broadcast."""

    schema_version: Literal[1] = 1
    event_id: EventId
    broadcast_sender: str = Field(min_length=1, max_length=256)
    broadcast_identifier: EventId
    region_code: Annotated[str, AfterValidator(division_code)] = Field(
        description="6- or 12-digit division code of the terminals' area", pattern=r"^(?:\d{6}|\d{12})$"
    )
    terminals_total: int = Field(ge=0)
    terminals_played: int = Field(ge=0)
    occurred_at: EventTime = Field(description="when the terminals reported")
    drill: bool = Field(default=False, description="an exercise or a test (演练): stored, never pages a live centre")

    @model_validator(mode="after")
    def played_within_total(self) -> BroadcastReceipt:
        if self.terminals_played > self.terminals_total:
            raise ValueError("terminals_played exceeds terminals_total")
        return self
