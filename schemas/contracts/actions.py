"""Dispatch actions (调度处置): what a centre does with a signal, and the audit record of each.

A centre sends a ``DispatchAction``; the dispatch desk decides it and puts an ``ActionRecord`` on
``dispatch-actions``, accepted or refused with the reason: the record is the audit row (留痕).
The desk records its own supervisions (督办) there too, so that none is sent twice.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import Field, StrictBool, model_validator

from schemas.contracts.alerts import Department
from schemas.contracts.events import Contract, EventId, EventTime
from schemas.reference.regions import Level


class ActionKind(str, enum.Enum):
    acknowledge = "acknowledge"  # 签收
    assign = "assign"  # 分办: to one or more departments
    coordinate = "coordinate"  # 协同: add a co-handling department
    feedback = "feedback"  # 处置反馈
    close = "close"  # 办结
    reopen = "reopen"  # 重新办理
    supervise = "supervise"  # 督办: recorded by the desk when a deadline is missed, never sent by a centre
    oversee = "oversee"  # 挂牌督办: a centre above the handler supervises the case by hand
    escalate = "escalate"  # 提级: the handling centre hands the case up to the centre above


class DispatchAction(Contract):
    """One action by one centre on one signal."""

    schema_version: Literal[1] = 1
    action_id: EventId
    signal_id: str = Field(min_length=1, max_length=64)
    centre_code: str = Field(pattern=r"^(\d{4}|\d{6}|\d{9}|\d{12})$", description="the acting centre")
    kind: ActionKind
    departments: list[Department] = Field(default_factory=list, description="for assign and coordinate")
    to_grid: StrictBool = Field(default=False, description="assign: hand the case to the community's grid workers "
                          "(交由网格办理), which the negative list (负面清单) refuses for some matters")
    note: str = Field(default="", max_length=4000)
    actor: str = Field(min_length=1, max_length=64, description="who acted: the signed-in operator's login, "
                       "key:<id> for a machine client, fengqiao for the desk itself; set by the gateway, never sent")
    occurred_at: EventTime

    @model_validator(mode="after")
    def departments_when_needed(self) -> DispatchAction:
        if self.kind is ActionKind.assign and not (self.departments or self.to_grid):
            raise ValueError("assign needs at least one department, or to_grid")
        if self.kind is ActionKind.coordinate and not self.departments:
            raise ValueError("coordinate needs at least one department")
        if self.to_grid and self.kind is not ActionKind.assign:
            raise ValueError("to_grid is for assign")
        return self


class ActionRecord(DispatchAction):
    """An action as decided and kept: one row of ``dispatch_actions``."""

    region_code: str = Field(description="the signal's 12-digit region")
    centre_level: Level
    recorded_at: datetime = Field(description="when the desk decided it: deadlines count from here")
    outcome: Literal["accepted", "refused"]
    reason: str = Field(default="", description="why refused, or what a supervision is about")
