"""Department alerts (部门预警): what police, petitions, civil affairs, weather, fire IoT and
other departments publish, each only within its own categories."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from schemas.contracts.events import Contract, EventId, EventTime, Location, Party
from schemas.contracts.levels import RiskLevel
from schemas.reference.populations import populations

# 特殊人群名册: what registers a person, or takes them off, as one of schemas/populations.yaml.
REGISTRATIONS = {"population_registered": "registered", "population_deregistered": "deregistered"}
# Earlier, one category per kind: each is a registration of that kind (民政 publishing 低保对象 registers one).
REGISTERED_AS = {"elderly_alone_registered": "elderly_alone", "left_behind_child": "left_behind_child",
                 "child_in_difficulty": "child_in_difficulty", "subsistence_allowance": "subsistence_allowance",
                 "extreme_poverty": "extreme_poverty"}


class Department(str, enum.Enum):
    police = "police"  # 公安, including 110 police calls
    petition = "petition"  # 信访
    civil_affairs = "civil_affairs"  # 民政
    emergency = "emergency"  # 应急管理
    weather = "weather"  # 气象
    health = "health"  # 卫生健康
    fire = "fire"  # 消防, including IoT smoke and gas alarms
    urban_mgmt = "urban_mgmt"  # 城市管理
    market_regulation = "market_regulation"  # 市场监管
    housing = "housing"  # 住房城乡建设


@dataclass(frozen=True)
class DepartmentInfo:
    code: str
    name: str
    categories: dict[str, str]


@cache
def departments() -> dict[str, DepartmentInfo]:
    doc = yaml.safe_load(resources.files("schemas.reference").joinpath("departments.yaml").read_text("utf-8"))
    return {code: DepartmentInfo(code, d["name"], dict(d["categories"])) for code, d in doc["departments"].items()}


def _categories_per_department(schema: dict) -> None:
    """Each department's admitted categories in the JSON Schema itself, as if/then per department."""
    schema["allOf"] = [
        {"if": {"properties": {"department": {"const": code}}, "required": ["department"]},
         "then": {"properties": {"category": {"enum": sorted(info.categories)}}}}
        for code, info in sorted(departments().items())]


class DepartmentAlert(Contract):
    """部门预警: one alert from one department."""

    model_config = ConfigDict(**Contract.model_config, json_schema_extra=_categories_per_department)

    schema_version: Literal[1] = 1
    event_id: EventId
    department: Department
    category: str = Field(description="a category listed for the department in schemas/departments.yaml")
    location: Location
    subjects: list[Party] = Field(default_factory=list, max_length=50, description="people concerned")
    severity: RiskLevel | None = None
    text: str = Field(default="", max_length=4000)
    attributes: dict[str, str] = Field(default_factory=dict, max_length=50, validate_default=True,
                                       description="e.g. device_id of an IoT alarm, call_id of a 110 call; "
                                       "population of a registration (schemas/populations.yaml)")
    occurred_at: EventTime
    drill: bool = Field(default=False, description="an exercise or a test (演练): stored, never pages a live centre")

    @field_validator("category")
    @classmethod
    def category_of_department(cls, category: str, info: ValidationInfo) -> str:
        department = info.data.get("department")
        if department is not None and category not in departments()[department.value].categories:
            raise ValueError("not_in_catalogue")
        return category

    @field_validator("attributes")
    @classmethod
    def registration_says_who_and_what(cls, attributes: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        """A registration or deregistration names the person (subjects) and the kind they are
        registered as (``attributes.population``, one of schemas/populations.yaml)."""
        if info.data.get("department") is not Department.civil_affairs or info.data.get("category") not in REGISTRATIONS:
            return attributes
        kind = attributes.get("population")
        if kind not in populations():
            raise ValueError(f"population {kind!r} is not one of {', '.join(populations())}")
        if not info.data.get("subjects"):
            raise ValueError("a registration names the person it registers in subjects")
        return attributes
