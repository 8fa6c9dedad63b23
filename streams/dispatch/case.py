"""The dispatch loop (调度、分办、协同、督办) as pure logic: a case per signal and its state machine.

A case opens when the handling centre (承办) is notified. It must be acknowledged (签收) within
the level's acknowledgement time and closed (办结) within its closure time. In between it may be
assigned to departments (分办), get co-handling departments (协同) and feedback (处置反馈); a
closed case may be reopened (重新办理), which opens it again with fresh deadlines. The handling
centre may hand the case up to the centre above (提级), which then signs for it afresh; a centre
above the handler may put the case under its supervision by hand (挂牌督办).

A case whose signal is found answered in time after all (迟到回应: the expected event happened
before the deadline and reached fengqiao late) closes itself, recorded as the desk's own 办结,
unless other signals of the incident joined it; a centre may reopen it.

A missed deadline is supervised (督办) by the centre above the handling one; if another period of
the same length passes, by the centre above that, up to the city (Dalian art. 12, 22).
Only a centre whose jurisdiction holds the signal's region may act on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.contracts.actions import ActionKind
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import stable_id
from schemas.reference.matters import catalogue
from schemas.reference.regions import CENTRE_LEVELS, level_of_centre


class CaseState(str, enum.Enum):
    open = "open"  # 待签收
    acknowledged = "acknowledged"  # 已签收
    assigned = "assigned"  # 已分办
    closed = "closed"  # 已办结


LABEL = {CaseState.open: "待签收", CaseState.acknowledged: "已签收", CaseState.assigned: "已分办",
         CaseState.closed: "已办结"}
ACTION_LABEL = {ActionKind.acknowledge: "签收", ActionKind.assign: "分办", ActionKind.coordinate: "协同",
                ActionKind.feedback: "处置反馈", ActionKind.close: "办结", ActionKind.reopen: "重新办理",
                ActionKind.supervise: "督办", ActionKind.oversee: "挂牌督办", ActionKind.escalate: "提级"}

NOT_CLOSED = frozenset({CaseState.open, CaseState.acknowledged, CaseState.assigned})
# kind -> (states it is allowed in, state after); None keeps the state.
TRANSITIONS: dict[ActionKind, tuple[frozenset[CaseState], CaseState | None]] = {
    ActionKind.acknowledge: (frozenset({CaseState.open}), CaseState.acknowledged),
    ActionKind.assign: (frozenset({CaseState.acknowledged, CaseState.assigned}), CaseState.assigned),
    ActionKind.coordinate: (frozenset({CaseState.assigned}), None),
    ActionKind.feedback: (frozenset({CaseState.acknowledged, CaseState.assigned}), None),
    ActionKind.close: (frozenset({CaseState.acknowledged, CaseState.assigned}), CaseState.closed),
    ActionKind.reopen: (frozenset({CaseState.closed}), CaseState.open),
    ActionKind.supervise: (NOT_CLOSED, None),
    ActionKind.oversee: (NOT_CLOSED, None),
    ActionKind.escalate: (NOT_CLOSED, CaseState.open),  # the centre above signs for it afresh
}
HINT = {
    CaseState.open: "请先签收",
    CaseState.acknowledged: "请先分办",
    CaseState.closed: "请先重新办理",
    CaseState.assigned: "",
}
HAND = "hand"  # the key of a supervision by hand (挂牌督办): hand:<centre>


@dataclass(frozen=True)
class Refusal:
    status: int  # 403 outside the jurisdiction, 409 not allowed in this state
    reason: str  # in Chinese, for the operator


@dataclass(frozen=True)
class Supervision:
    """A missed deadline to be followed up by ``centre`` (督办)."""

    key: str  # unique per case, deadline, round and centre: recorded so it is sent once
    deadline: str  # "ack" or "close"
    centre: str
    due: datetime


@dataclass
class Case:
    signal_id: str
    region_code: str
    handler: str  # the handling centre's code
    level: RiskLevel
    rule_id: str
    summary: str
    ack_within: timedelta
    close_within: timedelta
    ack_due: datetime
    close_due: datetime
    state: CaseState = CaseState.open
    departments: list[str] = field(default_factory=list)
    round: int = 0  # reopenings so far
    supervised: set[str] = field(default_factory=set)  # ack:<round>:<centre>, close:…, hand:<centre>
    applied: set[str] = field(default_factory=set)  # action ids
    history: list[dict[str, Any]] = field(default_factory=list)  # accepted actions, oldest first (留痕)
    entity_level: str = ""  # what the signal is about, as its notice said
    entity: str = ""
    place: str = ""  # the region's names
    matters: list[str] = field(default_factory=list)  # grid matters among the evidence (事项清单)
    to_grid: bool = False  # handed to the community's grid workers (交由网格办理)
    joined: list[str] = field(default_factory=list)  # signals of the same incident joined into it (并案)
    answered_at: datetime | None = None  # 迟到回应: when the signal's answer happened, in time after all

    def to_json(self) -> dict[str, Any]:
        """The case as the desk keeps it on its state topic."""
        return {"signal_id": self.signal_id, "region_code": self.region_code, "handler": self.handler,
                "level": self.level.value, "rule_id": self.rule_id, "summary": self.summary,
                "ack_within_s": self.ack_within.total_seconds(), "close_within_s": self.close_within.total_seconds(),
                "ack_due": self.ack_due.isoformat(), "close_due": self.close_due.isoformat(),
                "state": self.state.value, "departments": self.departments, "round": self.round,
                "supervised": sorted(self.supervised), "applied": sorted(self.applied), "history": self.history,
                "entity_level": self.entity_level, "entity": self.entity, "place": self.place,
                "matters": self.matters, "to_grid": self.to_grid, "joined": self.joined,
                "answered_at": self.answered_at.isoformat() if self.answered_at else None}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Case:
        return cls(doc["signal_id"], doc["region_code"], doc["handler"], RiskLevel(doc["level"]), doc["rule_id"],
                   doc["summary"], timedelta(seconds=doc["ack_within_s"]), timedelta(seconds=doc["close_within_s"]),
                   datetime.fromisoformat(doc["ack_due"]), datetime.fromisoformat(doc["close_due"]),
                   CaseState(doc["state"]), list(doc["departments"]), doc["round"], set(doc["supervised"]),
                   set(doc["applied"]), list(doc.get("history", [])),  # cases kept before these: none
                   doc.get("entity_level", ""), doc.get("entity", ""), doc.get("place", ""),
                   list(doc.get("matters", [])), doc.get("to_grid", False), list(doc.get("joined", [])),
                   datetime.fromisoformat(doc["answered_at"]) if doc.get("answered_at") else None)

    def overseers(self) -> list[str]:
        """The centres that supervise this case: by hand, or for a missed deadline (督办)."""
        return sorted({key.rsplit(":", 1)[-1] for key in self.supervised})

    def refuse(self, kind: ActionKind, centre: str, to_grid: bool = False) -> Refusal | None:
        """Why ``centre`` may not do ``kind`` now (in Chinese), or None when it may; ``to_grid``:
        an assignment to the grid workers, refused for a matter on the negative list (负面清单)."""
        label = ACTION_LABEL[kind]
        if not self.region_code.startswith(centre):
            return Refusal(403, f"{self.region_code}不在{centre}综治中心辖区内，不能{label}")
        if kind is ActionKind.oversee and (centre == self.handler or not self.handler.startswith(centre)):
            return Refusal(403, f"只有承办中心{self.handler}的上级中心可以挂牌督办")
        if kind is ActionKind.escalate:
            if centre != self.handler:
                return Refusal(403, f"只有承办中心{self.handler}可以提级")
            if not centres_above(self.handler):
                return Refusal(409, "市级综治中心已是最高一级，无可提级")
        allowed, _ = TRANSITIONS[kind]
        if self.state not in allowed:
            if kind is ActionKind.acknowledge:
                return Refusal(409, f"案件{LABEL[self.state]}，无需再签收")
            hint = HINT[self.state]
            return Refusal(409, f"案件{LABEL[self.state]}，不能{label}" + (f"：{hint}" if hint else ""))
        if kind is ActionKind.oversee and f"{HAND}:{centre}" in self.supervised:
            return Refusal(409, f"{centre}已挂牌督办此案件")
        barred = catalogue().not_for_grids(self.matters) if to_grid else []
        if barred:
            names = "、".join(f"「{name}」" for name, _ in barred)
            why = "；".join(reason for _, reason in barred)
            return Refusal(409, f"{names}在负面清单上，不能交由网格办理：{why}（辽源条例第二十八条、大连条例第二十一条）")
        return None

    def apply(self, action_id: str, kind: ActionKind, departments: list[str], at: datetime, centre: str = "",
              actor: str = "", note: str = "", to_grid: bool = False) -> None:
        """Apply an accepted action decided at ``at`` (a supervision's ``note`` is its key), once:
        the desk applies its own records as it sends them, and may read them back first."""
        if action_id in self.applied:
            return
        self.applied.add(action_id)
        self.history.append({"kind": kind.value, "centre": centre, "actor": actor, "at": at.isoformat(),
                             "departments": departments, "note": note, **({"to_grid": True} if to_grid else {})})
        self.to_grid = self.to_grid or to_grid
        _, after = TRANSITIONS[kind]
        if kind in (ActionKind.assign, ActionKind.coordinate):
            self.departments += [d for d in departments if d not in self.departments]
        if kind is ActionKind.supervise:
            self.supervised.add(note)
        if kind is ActionKind.oversee:
            self.supervised.add(f"{HAND}:{centre}")
        if kind is ActionKind.reopen:
            self.round += 1
            self.ack_due, self.close_due = at + self.ack_within, at + self.close_within
        if kind is ActionKind.escalate:
            self.handler = centres_above(self.handler)[0]
            self.ack_due = at + self.ack_within
            self.round += 1  # the new handler's deadlines are supervised afresh
        if after is not None:
            self.state = after

    @property
    def answered_close(self) -> str:
        """The id of the desk's own 办结 of this case as answered late (one per case: a case a
        centre reopens after it stays open)."""
        return stable_id("act", self.signal_id, "answered-late")

    def closes_itself(self) -> bool:
        """迟到回应: the signal was answered in time after all, the case is not closed, was not
        closed so before, and holds no other signal of the incident (并案) that still stands."""
        return (self.answered_at is not None and self.state is not CaseState.closed and not self.joined
                and self.answered_close not in self.applied)

    def due_supervisions(self, now: datetime) -> list[Supervision]:
        """Supervisions due by ``now`` that were not sent yet, lowest centre first."""
        if self.state is CaseState.closed:
            return []
        deadline, due, step = (("ack", self.ack_due, self.ack_within) if self.state is CaseState.open
                               else ("close", self.close_due, self.close_within))
        out = []
        for n, centre in enumerate(centres_above(self.handler)):
            at = due + n * step
            key = f"{deadline}:{self.round}:{centre}"
            if now >= at and key not in self.supervised:
                out.append(Supervision(key, deadline, centre, at))
        return out


def centres_above(centre: str) -> list[str]:
    """The centres above ``centre``, nearest first: a community's street, district and city."""
    level = level_of_centre(centre)
    higher = CENTRE_LEVELS[CENTRE_LEVELS.index(level) + 1:]
    return [centre[: lv.digits] for lv in higher]
