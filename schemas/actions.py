"""Dispatch actions (调度处置): what a centre does with a notice, on ``dispatch-actions``."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field, model_validator

from schemas.alerts import Department
from schemas.events import Contract, EventId, EventTime


class ActionKind(str, enum.Enum):
    acknowledge = "acknowledge"  # 签收
    assign = "assign"  # 分办: to one or more departments
    coordinate = "coordinate"  # 协同: add a co-handling department
    feedback = "feedback"  # 处置反馈
    close = "close"  # 办结
    reopen = "reopen"  # 重新办理


class DispatchAction(Contract):
    """One action by one centre on one signal."""

    schema_version: Literal[1] = 1
    action_id: EventId
    signal_id: str = Field(min_length=1, max_length=64)
    centre_code: str = Field(pattern=r"^(\d{4}|\d{6}|\d{9}|\d{12})$", description="the acting centre")
    kind: ActionKind
    departments: list[Department] = Field(default_factory=list, description="for assign and coordinate")
    note: str = Field(default="", max_length=4000)
    actor: str = Field(min_length=1, max_length=64, description="operator id")
    occurred_at: EventTime

    @model_validator(mode="after")
    def departments_when_needed(self) -> DispatchAction:
        if self.kind in (ActionKind.assign, ActionKind.coordinate) and not self.departments:
            raise ValueError(f"{self.kind.value} needs at least one department")
        return self
