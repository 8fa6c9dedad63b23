"""Notification planning (通知计划): what a raised or updated signal sends, as a pure function.

The correlate step calls ``plan`` for every signal a batch raised and puts what it returns in
its outbox; nothing here touches Kafka. The policy, in the manner of Alertmanager's grouping:

- a new signal, or one raised to a higher level, notifies its centres (``notify.routing``) with
  fresh deadlines;
- more evidence for a signal the centres already have updates their notices in place (same
  notice ids, ``is_update``), keeps the deadlines they were given, pages no one, and does so at
  most once per repeat interval (per rule, else per level, in the routing table);
- an answer found to have come in time (迟到回应) updates them at once, whatever the interval:
  the handling centre's case closes itself on it;
- a drill's notices go to the drill channel only (演练: never a live centre's);
- a new red signal drafts a warning for release (预警发布, ``notify.release``), for a person to
  approve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.contracts.broadcasts import EmergencyBroadcast
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import CentreNotice, RiskSignal
from streams import topics
from streams.notify.release import broadcast_request, wants_release
from streams.notify.routing import Policy, Repeats, route
from streams.runtime.topics import TopicSpec


@dataclass(frozen=True)
class Notified:
    """What the centres were last told of a signal: when, and the deadlines they were given.
    Kept per signal in the correlate step's state, as ``{"t": ms, "ack": iso, "close": iso}``."""

    at_ms: int
    ack_due: datetime
    close_due: datetime

    def to_json(self) -> dict[str, Any]:
        return {"t": self.at_ms, "ack": self.ack_due.isoformat(), "close": self.close_due.isoformat()}

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> Notified | None:
        if doc is None:
            return None
        return cls(doc["t"], datetime.fromisoformat(doc["ack"]), datetime.fromisoformat(doc["close"]))


@dataclass(frozen=True)
class Plan:
    """What to send for one signal: its notices, the record of them to keep (None: keep what
    is there), and a draft warning for release. ``unrouted``: due to notify, no centre holds
    its region (the signal is stored and shown to the platform's operators all the same)."""

    notices: list[CentreNotice]
    notified: Notified | None = None
    release: EmergencyBroadcast | None = None
    unrouted: bool = False


def channel(notice: CentreNotice) -> TopicSpec:
    """Where a notice goes: a drill's to the drill channel, never to a live centre."""
    return topics.DRILL_NOTICES if notice.drill else topics.CENTRE_NOTICES


def plan(signal: RiskSignal, escalated: bool, last: Notified | None, now: datetime,
         policy: dict[RiskLevel, Policy], repeats: Repeats | timedelta, console: str = "") -> Plan:
    """The notices of ``signal`` now. ``escalated``: new, or raised to a higher level; ``last``:
    what its centres were told before, if anything; ``repeats``: how often an update re-notifies,
    per rule and level; ``console``: the console's address, for the case links."""
    update_of = None
    if not escalated:
        interval = repeats.of(signal) if isinstance(repeats, Repeats) else repeats
        if last is None or (now - _at(last, now) < interval and signal.answered_at is None):
            return Plan([])
        update_of = (last.ack_due, last.close_due)
    notices = route(signal, now, policy, update_of, console)
    if not notices:  # no centre holds the region: stored and counted, no one to notify
        return Plan([], unrouted=True)
    first = notices[0]
    notified = Notified(int(now.timestamp() * 1000), first.ack_due, first.close_due)
    release = broadcast_request(signal, now) if wants_release(signal) and update_of is None else None
    return Plan(notices, notified, release)


def _at(last: Notified, now: datetime) -> datetime:
    return datetime.fromtimestamp(last.at_ms / 1000, tz=now.tzinfo)
