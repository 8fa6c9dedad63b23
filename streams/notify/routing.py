"""Routing (分级推送): which centres a signal reaches, who handles, and by when.

Defaults from the design's policy table; the lowest notified centre handles (承办), the ones
above are informed (知悉). A deployment may set its own table (``FENGQIAO_ROUTING_FILE``)::

    red:    {centres: [community, township, county, city], ack_within: 15m, close_within: 12h}
    orange: {centres: [community, township, county], ack_within: 30m, close_within: 24h}
    ...

Every level must be there; centres are listed lowest first and must be adjacent levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from schemas.contracts.events import Source
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import CentreNotice, NoticeRole, RiskSignal
from schemas.reference.regions import CENTRE_LEVELS, Level, cut, registry
from streams.detection.ruleset import parse_duration


@dataclass(frozen=True)
class Policy:
    centres: tuple[Level, ...]  # lowest first
    ack_within: timedelta
    close_within: timedelta


DEFAULT_POLICY: dict[RiskLevel, Policy] = {
    RiskLevel.blue: Policy(CENTRE_LEVELS[:1], timedelta(hours=24), timedelta(days=7)),
    RiskLevel.yellow: Policy(CENTRE_LEVELS[:2], timedelta(hours=2), timedelta(hours=72)),
    RiskLevel.orange: Policy(CENTRE_LEVELS[:3], timedelta(minutes=30), timedelta(hours=24)),
    RiskLevel.red: Policy(CENTRE_LEVELS[:4], timedelta(minutes=15), timedelta(hours=12)),
}


def load_policy(path: Path | None) -> dict[RiskLevel, Policy]:
    """The routing table from ``path``, or the design's default; a wrong table stops the start."""
    if path is None:
        return DEFAULT_POLICY
    raw = yaml.safe_load(path.read_text("utf-8")) or {}
    table = {}
    for level in RiskLevel:
        entry = raw.get(level.value)
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: {level.value}: missing; every level needs centres, ack_within, close_within")
        try:
            centres = tuple(Level(c) for c in entry["centres"])
            policy = Policy(centres, parse_duration(entry["ack_within"]), parse_duration(entry["close_within"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {level.value}: {exc}") from None
        if not centres or centres != CENTRE_LEVELS[:len(centres)]:
            raise ValueError(f"{path}: {level.value}: centres must be the lowest levels in order, from community")
        table[level] = policy
    return table


@dataclass(frozen=True)
class Repeats:
    """How often an updated signal re-notifies its centres (Alertmanager's group and repeat
    intervals): per rule where the routing table names the rule, else per level, else the
    deployment's default (FENGQIAO_NOTICE_REPEAT_INTERVAL)."""

    default: timedelta
    by_level: dict[RiskLevel, timedelta] = field(default_factory=dict)
    by_rule: dict[str, timedelta] = field(default_factory=dict)

    def of(self, signal: RiskSignal) -> timedelta:
        return self.by_rule.get(signal.rule_id) or self.by_level.get(signal.level) or self.default


def load_repeats(path: Path | None, default: timedelta) -> Repeats:
    """The repeat intervals of the routing table at ``path``: an optional ``repeat_interval`` under
    each level, and under ``rules: {rule_id: {repeat_interval: 4h}}``; a wrong one stops the start."""
    raw = (yaml.safe_load(path.read_text("utf-8")) or {}) if path is not None else {}
    by_level, by_rule = {}, {}
    try:
        for level in RiskLevel:
            value = (raw.get(level.value) or {}).get("repeat_interval")
            if value is not None:
                by_level[level] = parse_duration(value)
        for rule_id, entry in (raw.get("rules") or {}).items():
            if not isinstance(entry, dict) or "repeat_interval" not in entry:
                raise ValueError(f"rules: {rule_id}: give repeat_interval")
            by_rule[str(rule_id)] = parse_duration(entry["repeat_interval"])
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if any(d <= timedelta(0) for d in [*by_level.values(), *by_rule.values()]):
        raise ValueError(f"{path}: a repeat interval must be longer than nothing")
    return Repeats(default, by_level, by_rule)


def notified_levels(region_code: str, policy: Policy) -> tuple[Level, ...]:
    """The policy's centres that hold the region: a district-wide or city-wide signal has no
    community or street to handle it, so the lowest centre holding all of it handles. A region
    above every centre (a province) has none: see ``centres_of``."""
    if region_code not in registry():
        return ()  # not a unit this deployment knows: no centre can be named for it
    region = registry().get(region_code).level
    levels = tuple(lv for lv in policy.centres if lv.digits <= region.digits)
    if levels:
        return levels
    holding = [lv for lv in CENTRE_LEVELS if lv.digits <= region.digits]
    return holding[:1] if holding else ()


def centres_of(region_code: str, policy: Policy) -> list[tuple[str, Level, NoticeRole]]:
    """(centre, level, role) of each notified centre. A region above the city (a province-wide
    warning) concerns every city centre inside it that the registry knows: each handles its own
    part (先期处置 in its area, Dalian art. 17-18), none of them informs another."""
    if region_code in registry() and registry().get(region_code).level.digits < Level.city.digits:
        return [(city.prefix, Level.city, NoticeRole.handle) for city in registry().within(region_code, Level.city)]
    return [(cut(region_code, level), level, NoticeRole.handle if i == 0 else NoticeRole.inform)
            for i, level in enumerate(notified_levels(region_code, policy))]


def route(signal: RiskSignal, now: datetime, policy: dict[RiskLevel, Policy] = DEFAULT_POLICY,
          update_of: tuple[datetime, datetime] | None = None, console: str = "") -> list[CentreNotice]:
    """One notice per notified centre; deadlines run from ``now``. ``update_of`` is the (ack, close)
    deadlines of the notices already sent, which an update keeps: more evidence moves no deadline.
    Each says what the centre needs to act without another system: the entity, the place's
    names, and the case's page on the console at ``console``."""
    rule = policy[signal.level]
    place = registry().name_of(signal.region_code)
    matters = sorted({e.category for e in signal.evidence if e.source is Source.grid_report})
    joins = list(dict.fromkeys(e.uid.removeprefix("signal:") for e in signal.evidence if e.source is Source.signal))
    notices = []
    for centre, level, role in centres_of(signal.region_code, rule):
        notices.append(
            CentreNotice(
                notice_id=CentreNotice.make_id(signal.signal_id, centre),
                signal_id=signal.signal_id,
                signal_version=signal.version,
                centre_code=centre,
                centre_level=level,
                role=role,
                level=signal.level,
                rule_id=signal.rule_id,
                region_code=signal.region_code,
                summary=signal.summary,
                ack_due=update_of[0] if update_of else now + rule.ack_within,
                close_due=update_of[1] if update_of else now + rule.close_within,
                created_at=now,
                drill=signal.drill,
                is_update=update_of is not None,
                entity_level=signal.entity_level.value,
                entity=signal.entity,
                place=place,
                case_url=CentreNotice.case_link(console, signal.signal_id),
                matters=matters,
                joins=joins,
                answered_at=signal.answered_at,
            )
        )
    return notices
