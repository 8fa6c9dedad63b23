"""Correlation (研判): sliding event-time windows per rule and group, and the signals they raise.

The window state of one (rule, group) is a small JSON document kept in a Faust table, so it
survives a worker restart through the table's changelog. ``observe`` is pure: the same events
in the same order give the same states and the same signal ids, which is what makes a replay
or a restart safe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from schemas.events import BEIJING, NormalisedEvent, Source
from schemas.levels import RiskLevel
from schemas.regions import Level, pad, registry
from schemas.signals import Evidence, RiskSignal
from streams.ruleset import Rule


def to_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).astimezone(BEIJING)


@dataclass
class WindowState:
    """The events of one group inside the rule's window, and the open incident if any."""

    entries: list[list[Any]] = field(default_factory=list)  # [occurred_ms, uid, source, category]
    anchor_ms: int | None = None  # first event of the open incident: part of the signal id
    version: int = 0
    level: str | None = None
    raised_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> WindowState:
        return cls(**doc) if doc else cls()


@dataclass(frozen=True)
class Outcome:
    state: WindowState
    signal: RiskSignal | None = None
    previous_level: RiskLevel | None = None  # the level before this update, None when new

    @property
    def escalated(self) -> bool:
        """New, or raised to a higher level: a reason to notify centres again."""
        return self.signal is not None and (
            self.previous_level is None or self.signal.level > self.previous_level
        )


def state_key(rule: Rule, group: str) -> str:
    return f"{rule.id}|{group}"


def observe(rule: Rule, state: WindowState, event: NormalisedEvent, group: str, now: datetime) -> Outcome:
    """Add one matching event to its group's window and say whether a signal is raised or updated."""
    t = to_ms(event.occurred_at)
    window_ms = int(rule.window.total_seconds() * 1000)
    latest = max([t, *(e[0] for e in state.entries)])
    if t < latest - window_ms or any(e[1] == event.uid for e in state.entries):
        return Outcome(state)  # too late for any open window, or seen before (redelivery)

    entries = sorted([*state.entries, [t, event.uid, event.source.value, event.category]])
    entries = [e for e in entries if e[0] >= latest - window_ms]
    new = WindowState(entries, state.anchor_ms, state.version, state.level, state.raised_ms)
    if len(entries) < rule.threshold:
        new.anchor_ms, new.version, new.level, new.raised_ms = None, 0, None, None
        return Outcome(new)

    previous = RiskLevel(state.level) if state.anchor_ms is not None and state.level else None
    if new.anchor_ms is None:
        new.anchor_ms, new.version, new.raised_ms = entries[0][0], 0, to_ms(now)
    new.version += 1
    level = max(rule.level, previous) if previous else rule.level
    new.level = level.value
    return Outcome(new, _signal(rule, new, group, level, event, now), previous)


def _signal(rule: Rule, state: WindowState, group: str, level: RiskLevel, event: NormalisedEvent,
            now: datetime) -> RiskSignal:
    entity_level = rule.group_by.level or Level.community
    region_code = pad(group) if rule.group_by.field == "region_code" else event.region_code
    evidence = [
        Evidence(uid=uid, source=Source(source), category=category, occurred_at=from_ms(ms))
        for ms, uid, source, category in state.entries[-rule.max_evidence:]
    ]
    anchor = from_ms(state.anchor_ms or 0)
    place = registry().full_name(region_code) if region_code in registry() else region_code
    summary = rule.summary.format(
        place=place, count=len(state.entries), rule=rule.name,
        window_hours=round(rule.window.total_seconds() / 3600),
    )
    return RiskSignal(
        signal_id=RiskSignal.make_id(rule.id, group, anchor),
        version=state.version,
        rule_id=rule.id,
        rule_name=rule.name,
        level=level,
        entity_level=entity_level,
        entity=group,
        region_code=region_code,
        window_start=anchor,
        window_end=from_ms(state.entries[-1][0]),
        raised_at=from_ms(state.raised_ms or to_ms(now)),
        updated_at=now,
        evidence=evidence,
        summary=summary,
        rule_chain=[rule.id],
        drill=event.drill,
    )


class Correlator:
    """The loaded rule pack applied to one event: which (rule, group) windows it enters."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def windows_for(self, event: NormalisedEvent) -> list[tuple[Rule, str]]:
        out = []
        for rule in self.rules:
            if rule.matches(event):
                group = rule.group_by.key(event)
                if group:
                    out.append((rule, group))
        return out
