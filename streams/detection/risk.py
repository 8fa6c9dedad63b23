"""Entity risk (实体风险累积), in the manner of risk-based alerting.

A rule with a ``risk_score`` adds that score, each time it raises a signal, to the risk objects
of the signal: its community, the building or address, the person (pseudonym) its group names.
Scores decay with a half-life; one rule's contribution to one object is capped, so a single
noisy source cannot alone make an object red; the decayed total maps to the four colours. When
an object's level rises, its ``entity_risk`` signal is raised or upgraded (never raised again),
with every contribution as evidence and an explanation of who added what.

The signal's id names the object and the local day its risk opened, not the contribution that
happened to arrive first: rules fed by different topics raise their signals in no fixed order,
and a replay must give the same ids. Its window starts at the earliest contribution of the
episode, which an out-of-order contribution can still move earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from schemas.contracts.events import Source
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import Evidence, RiskSignal
from schemas.reference.regions import Level, pad, registry
from streams.detection.windows import STATE_FORMAT, from_ms, state_format

RULE_ID = "entity_risk"
RULE_NAME = "实体风险累积"


class Contribution(NamedTuple):
    """One rule's score added to an object by one signal (a JSON array in the state)."""

    at_ms: int
    rule: str
    score: float
    signal_id: str


@dataclass(frozen=True)
class RiskPolicy:
    half_life: timedelta = timedelta(days=7)
    per_source_cap: float = 40.0
    thresholds: tuple[tuple[RiskLevel, float], ...] = (
        (RiskLevel.red, 100.0), (RiskLevel.orange, 70.0), (RiskLevel.yellow, 40.0), (RiskLevel.blue, 20.0))

    def level(self, score: float) -> RiskLevel | None:
        return next((lv for lv, at in self.thresholds if score >= at), None)


def objects(rule: Any, group: str, region_code: str) -> list[tuple[str, str]]:
    """The risk objects a rule's signal is about, as (kind, object key) pairs."""
    parts = group.split("|")
    first = rule.group_by[0]
    if not (first.field == "region_code" and (first.level is None or first.level.digits >= Level.county.digits)):
        parts = parts[1:]  # the county a non-region group is tied to
    community = region_code[: Level.community.digits]
    out = [("community", community)] if region_code[Level.township.digits:] != "000" else []
    for part, value in zip(rule.group_by, parts):
        if part.field == "subjects":
            out.append(("person", f"{region_code[: Level.county.digits]}|{value}"))
        elif part.field in ("attributes.building", "attributes.address"):
            out.append(("address", f"{community}|{value}"))
    return out


def decayed(contributions: list[Contribution], at_ms: int, policy: RiskPolicy) -> float:
    """The total score at a time: each contribution halves every half-life, and each rule's sum
    is capped."""
    half = policy.half_life.total_seconds() * 1000
    by_rule: dict[str, float] = {}
    for t, rule, score, _ in contributions:
        by_rule[rule] = by_rule.get(rule, 0.0) + score * 0.5 ** (max(0, at_ms - t) / half)
    return sum(min(v, policy.per_source_cap) for v in by_rule.values())


def add(state: dict[str, Any] | None, signal: RiskSignal, score: float, at_ms: int, policy: RiskPolicy
        ) -> tuple[dict[str, Any], float, RiskLevel | None, RiskLevel | None]:
    """Add one contribution; returns the new state, the score, and the levels before and after.
    The score is taken at the latest contribution's time, so it does not depend on their order."""
    if state:
        state_format(state)
    state = {**(state or {"contributions": [], "level": None, "anchor_ms": None, "version": 0}), "format": STATE_FORMAT}
    before = RiskLevel(state["level"]) if state["level"] else None
    contributions = [Contribution._make(c) for c in state["contributions"]]
    latest = max([at_ms, *(c.at_ms for c in contributions)])  # a late contribution is not "now"
    horizon = latest - int(policy.half_life.total_seconds() * 1000 * 8)  # < 0.4% of the score is left
    kept = [c for c in contributions if c.at_ms >= horizon and c.signal_id != signal.signal_id]
    contributions = [*kept, Contribution(at_ms, signal.rule_id, score, signal.signal_id)]
    state["contributions"] = [list(c) for c in contributions]
    total = decayed(contributions, latest, policy)
    after = policy.level(total)
    if after is None:  # the episode ends; its day and version stay, for a reopening the same day
        state.update(level=None, anchor_ms=None)
        return state, total, before, after
    if before is None:
        day = opened_on(at_ms)
        if state.get("opened") != day:
            state.update(opened=day, version=0)
            state.pop("signal_entity", None)  # a new episode is this object's own
    state["anchor_ms"] = min(state["anchor_ms"] or at_ms, at_ms)
    if before is None or after > before:
        state.update(level=after.value, version=state["version"] + 1)
    return state, total, before, after


def merge(into: dict[str, Any] | None, absorbed: dict[str, Any], absorbed_entity: str, policy: RiskPolicy
          ) -> tuple[dict[str, Any], float, RiskLevel | None, RiskLevel | None]:
    """One person's risk (``absorbed``, the object ``absorbed_entity``) joins another's, the two
    found to be one person: their contributions add up (each signal once). An open episode of
    ``into`` goes on; else one of ``absorbed`` goes on as an update of its own signal. Returns
    the joined state, the score, and the levels before and after, as ``add`` does."""
    state_format(absorbed)
    if into:
        state_format(into)
    base = into if into and into.get("level") else absorbed
    state = {**(into or {}), **{k: base[k] for k in ("level", "anchor_ms", "version", "opened") if k in base},
             "format": STATE_FORMAT}
    if base is absorbed and absorbed.get("level"):
        state["signal_entity"] = absorbed.get("signal_entity") or absorbed_entity
    mine = [Contribution._make(c) for c in (into or {}).get("contributions", [])]
    ids = {c.signal_id for c in mine}
    contributions = sorted([*mine, *(Contribution._make(c) for c in absorbed["contributions"]
                                     if c[3] not in ids)])
    state["contributions"] = [list(c) for c in contributions]
    before = RiskLevel(state["level"]) if state.get("level") else None
    total = decayed(contributions, max((c.at_ms for c in contributions), default=0), policy)
    after = policy.level(total)
    if after is not None and (before is None or after > before):
        if before is None:
            state.update(anchor_ms=min(c.at_ms for c in contributions), opened=opened_on(contributions[0].at_ms),
                         version=0)
            state.pop("signal_entity", None)
        state.update(level=after.value, version=state.get("version", 0) + 1)
    return state, total, before, after


def opened_on(at_ms: int) -> str:
    """The local (Beijing) day an object's risk opened: the day in its signal id."""
    return from_ms(at_ms).date().isoformat()


def risk_signal(kind: str, key: str, state: dict[str, Any], total: float, level: RiskLevel,
                names: dict[str, str], drill: bool, now: datetime) -> RiskSignal:
    region = pad(key.split("|", 1)[0])
    place = registry().full_name(region) if region in registry() else region
    contributions = [Contribution._make(c) for c in state["contributions"]]
    by_rule: dict[str, float] = {}
    for _, rule, score, _ in contributions:
        by_rule[rule] = by_rule.get(rule, 0.0) + score
    explained = "、".join(f"{names.get(r, r)}({s:g})" for r, s in sorted(by_rule.items()))
    what = {"community": "社区", "address": "楼栋/地址", "person": "当事人"}[kind]
    anchor = from_ms(state["anchor_ms"])
    opened = datetime.fromisoformat(state.get("opened") or opened_on(state["anchor_ms"])).replace(tzinfo=anchor.tzinfo)
    return RiskSignal(
        signal_id=RiskSignal.make_id(RULE_ID, state.get("signal_entity") or f"{kind}:{key}", opened),
        version=state["version"],
        rule_id=RULE_ID,
        rule_name=RULE_NAME,
        level=level,
        entity_level=Level.community,
        entity=f"{kind}:{key}",
        region_code=region,
        window_start=anchor,
        window_end=from_ms(contributions[-1].at_ms),
        raised_at=anchor,
        updated_at=now,
        evidence=[Evidence(uid=f"signal:{c.signal_id}", source=Source.signal, category=f"signal.{c.rule}",
                           occurred_at=from_ms(c.at_ms)) for c in contributions],
        summary=f"{place}：{what}风险累积{total:.0f}分，由{explained}构成",
        rule_chain=[*sorted(by_rule), RULE_ID],
        drill=drill,
    )
