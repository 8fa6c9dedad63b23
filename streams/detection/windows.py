"""Windows (关联窗口): the event-time window of one rule and group, and the signals it raises.

The state of one (rule, group) is a ``WindowState``: typed entries and pending deadlines, kept
in the worker's state table as a small JSON document with a format version, so it survives a
worker restart through the table's changelog. Everything here is pure: the same events in the
same order give the same states and the same signal ids, which is what makes a replay or a
restart safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple

from schemas.contracts.events import BEIJING, NormalisedEvent, Source
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import Evidence, RiskSignal
from schemas.reference.regions import Level, pad, registry
from streams.detection.ruleset import AbsenceRule, RegisterRule, TemporalRule, ValueCountRule

MAX_CHAIN_DEPTH = 3
# 迟到回应: how long after a missed deadline an answer that happened in time may still reach
# fengqiao and answer the signal it raised (a grid app that syncs once back in coverage)
ANSWERABLE_MS = 7 * 86_400_000


def to_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).astimezone(BEIJING)


def raise_level(level: RiskLevel, steps: int) -> RiskLevel:
    grade = max(1, level.grade - steps)
    return next(lv for lv in RiskLevel if lv.grade == grade)


STATE_FORMAT = 4  # of the windows table's documents; 3: without unanswered nor entries' device; 2: nor
# signal_group; 1: the same as 2, unmarked


class StateFormatError(ValueError):
    """A window state written in a format this worker does not read."""


class Entry(NamedTuple):
    """One event in a window, as much of it as the rule needs (a JSON array in the state)."""

    at_ms: int  # event time
    uid: str
    source: str
    category: str
    tag: str  # what the event is to the rule: a condition's name, trigger, expected, requires
    level: str | None
    drill: bool
    device: str = ""  # the IoT device that sent it (attributes.device_id), for silences by device


class Pending(NamedTuple):
    """An absence rule's trigger waiting for its expected event (a JSON array in the state)."""

    deadline_ms: int
    trigger_ms: int
    uid: str


class Unanswered(NamedTuple):
    """A deadline that passed unanswered and raised its signal (a JSON array in the state): an
    answer that happened before it but reaches fengqiao later still answers it (迟到回应)."""

    deadline_ms: int
    trigger_ms: int
    uid: str
    raised_ms: int
    group: str  # the group its signal id was made with
    drill: bool


def state_format(doc: dict[str, Any]) -> int:
    """The format of a document of the windows table; refuses one this worker cannot read."""
    version = doc.get("format", 1)
    if not isinstance(version, int) or version > STATE_FORMAT:
        raise StateFormatError(
            f"window state of format {version!r}; this worker reads formats 1 to {STATE_FORMAT}. A newer "
            "fengqiao wrote it: run that version, or start this one with a new FENGQIAO_APP_ID")
    return version


@dataclass
class WindowState:
    """The events of one group inside the rule's window, and the open incident if any."""

    entries: list[Entry] = field(default_factory=list)  # in time order
    anchor_ms: int | None = None  # first event of the open incident: part of the signal id
    version: int = 0
    level: str | None = None
    raised_ms: int | None = None
    pending: list[Pending] = field(default_factory=list)  # absence: triggers awaiting their deadline
    partition: int | None = None  # where its events live, for deadlines fired by a watermark
    # the group the open incident's signal id was made with, where that is not the group it is
    # kept under now (a person merged into another by ``intake.linking``): it updates that signal
    signal_group: str | None = None
    unanswered: list[Unanswered] = field(default_factory=list)  # absence: signals a late answer may still answer

    def to_json(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "entries": [list(e) for e in self.entries], "anchor_ms": self.anchor_ms,
                "version": self.version, "level": self.level, "raised_ms": self.raised_ms,
                "pending": [list(p) for p in self.pending], "partition": self.partition,
                "signal_group": self.signal_group, "unanswered": [list(u) for u in self.unanswered]}

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> WindowState:
        """Read format 4, 3 (without ``unanswered``), 2 (nor ``signal_group``), or 1 (format 2
        before it was marked)."""
        if not doc:
            return cls()
        state_format(doc)
        return cls([Entry(*e) for e in doc["entries"]], doc["anchor_ms"], doc["version"], doc["level"],
                   doc["raised_ms"], [Pending._make(p) for p in doc["pending"]], doc["partition"],
                   doc.get("signal_group"), [Unanswered._make(u) for u in doc.get("unanswered", [])])

    def signal_id(self, rule_id: str, group: str) -> str:
        """The id of the open incident's signal (``anchor_ms`` set)."""
        return RiskSignal.make_id(rule_id, self.signal_group or group, from_ms(self.anchor_ms or 0))


@dataclass(frozen=True)
class Outcome:
    state: WindowState
    signal: RiskSignal | None = None
    previous_level: RiskLevel | None = None  # the level before this update, None when new
    late_ms: int | None = None  # the event came this much too late for the group's windows

    @property
    def escalated(self) -> bool:
        """New, or raised to a higher level: a reason to notify centres again."""
        return self.signal is not None and (self.previous_level is None or self.signal.level > self.previous_level)


def state_prefix(rule: Any) -> str:
    """``id@fingerprint|``: a rule whose definition changes starts with fresh windows, while an
    unchanged rule keeps its own across a reload."""
    return f"{rule.id}@{rule.fingerprint}|"


def entry_of(event: NormalisedEvent, tag: str) -> Entry:
    """An event as its window keeps it, ``tag`` what it is to the rule."""
    return Entry(to_ms(event.occurred_at), event.uid, event.source.value, event.category, tag,
                 event.level.value if event.level else None, event.drill, event.attributes.get("device_id", ""))


# -- when a rule's window holds enough ---------------------------------------------------------
def fired(rule: Any, entries: list[Entry]) -> bool:
    if isinstance(rule, ValueCountRule):
        return len({e.tag for e in entries}) >= rule.threshold
    if isinstance(rule, TemporalRule):
        if rule.type == "temporal":
            counts: dict[str, int] = {}
            for e in entries:
                counts[e.tag] = counts.get(e.tag, 0) + 1
            return all(counts.get(name, 0) >= c.min_count for name, c in rule.conditions.items())
        return _in_order(rule, entries)
    return len(entries) >= rule.threshold


def firing_span(rule: Any, entries: list[Entry], t: int, window_ms: int) -> list[Entry] | None:
    """The first window of the rule's length that holds the event at ``t`` and enough to fire.
    Windows slide: one may start at any entry up to a window before ``t``. A late event (within
    allowed lateness) joins the windows it belongs to; it never makes a window longer."""
    for start in sorted({e.at_ms for e in entries if t - window_ms <= e.at_ms <= t}):
        span = [e for e in entries if start <= e.at_ms <= start + window_ms]
        if fired(rule, span):
            return span
    return None


def _in_order(rule: TemporalRule, entries: list[Entry]) -> bool:
    """Each condition met min_count times, each after the previous condition was met."""
    after, i = -1, 0
    for name, cond in rule.conditions.items():
        seen = 0
        while i < len(entries) and seen < cond.min_count:
            if entries[i].tag == name and entries[i].at_ms >= after:
                seen += 1
                if seen == cond.min_count:
                    after = entries[i].at_ms
            i += 1
        if seen < cond.min_count:
            return False
    return True


def observe(rule: Any, state: WindowState, event: NormalisedEvent, group: str, tag: str, now: datetime,
            partition: int | None = None) -> Outcome:
    """Add one event to its group's window and say whether a signal is raised or updated."""
    t, uid = to_ms(event.occurred_at), event.uid
    window_ms, late_ms = rule.window_ms, rule.late_ms
    latest = max(t, state.entries[-1].at_ms) if state.entries else t  # entries are kept in time order
    if any(e.uid == uid for e in state.entries):
        return Outcome(state)  # seen before (redelivery)
    if t < latest - window_ms - late_ms:  # too late for any open window: counted and kept apart
        return Outcome(state, late_ms=latest - window_ms - late_ms - t)
    entry = entry_of(event, tag)
    if isinstance(rule, RegisterRule):
        return Outcome(register_step(rule, state, entry, partition))
    waiting = {p.uid for p in state.pending}  # a trigger still awaiting its deadline is its signal's evidence
    entries = [e for e in sorted([*state.entries, entry]) if e.at_ms >= latest - window_ms - late_ms or e.uid in waiting]
    new = replace(state, entries=entries, pending=list(state.pending),
                  partition=partition if partition is not None else state.partition)
    if isinstance(rule, AbsenceRule):
        return Outcome(_absence_step(rule, new, tag, t, event.uid))
    span = firing_span(rule, entries, t, window_ms)
    if span is None:
        if fired(rule, [e for e in entries if e.at_ms >= latest - window_ms]):
            return Outcome(new)  # a late event outside the open incident: kept, nothing raised
        new.anchor_ms, new.version, new.level, new.raised_ms, new.signal_group = None, 0, None, None, None
        return Outcome(new)
    entries = span
    previous = RiskLevel(state.level) if state.anchor_ms is not None and state.level else None
    if new.anchor_ms is None:
        new.anchor_ms, new.version, new.raised_ms = span[0].at_ms, 0, to_ms(now)
    new.version += 1
    level = _level(rule, entries)
    if previous:
        level = max(level, previous)
    new.level = level.value
    region = region_of(rule, group, event.region_code)
    return Outcome(new, make_signal(rule, new, group, level, region, event.drill, now, entries), previous)


def _level(rule: Any, entries: list[Entry]) -> RiskLevel:
    base = rule.level
    if rule.takes_level:  # a single urgent event raises at its publisher's own level
        base = max([base, *(RiskLevel(e.level) for e in entries if e.source != Source.signal.value and e.level)])
    chained = [RiskLevel(e.level) for e in entries if e.source == Source.signal.value and e.level]
    if not chained:
        return base
    return raise_level(max([base, *chained]), rule.uplift)


def _absence_step(rule: AbsenceRule, state: WindowState, tag: str, t: int, uid: str) -> WindowState:
    if tag == "trigger":
        deadline = t + rule.within_ms
        required = rule.requires is None or any(e.tag == "requires" for e in state.entries)
        # an expected event read before its trigger (another source's topic ran ahead) still counts
        answered = any(e.tag == "expected" and t <= e.at_ms <= deadline for e in state.entries)
        if required and not answered and not _added_up(state.entries, t, deadline) \
                and not any(p.uid == uid for p in state.pending):
            state.pending.append(Pending(deadline, t, uid))
    elif tag == "expected":  # a visit after a trigger and before its deadline satisfies it
        state.pending = [p for p in state.pending if not (p.trigger_ms <= t <= p.deadline_ms)]
    elif tag.startswith("part:"):  # parts that together make the whole answer it (部分回执累加)
        state.pending = [p for p in state.pending
                         if not (p.trigger_ms <= t <= p.deadline_ms and _added_up(state.entries, p.trigger_ms,
                                                                                 p.deadline_ms))]
    return state


def _added_up(entries: list[Entry], start_ms: int, end_ms: int) -> bool:
    """Whether the partial answers between ``start_ms`` and ``end_ms`` add up to the whole (the
    played terminals of each receipt, against the most terminals any of them counts)."""
    parts = [e.tag.split(":")[1:] for e in entries if e.tag.startswith("part:") and start_ms <= e.at_ms <= end_ms]
    return bool(parts) and sum(int(p) for p, _ in parts) >= max(int(w) for _, w in parts) > 0


# -- registers (名册): members that must be heard from ---------------------------------------------
def members(entries: list[Entry]) -> dict[str, Entry]:
    """What a group is registered as now: each kind's registration, unless deregistered since."""
    return {e.tag.partition(":")[2]: e for e in _latest_of_each_kind(entries) if e.tag.startswith("registered:")}


def register_step(rule: RegisterRule, state: WindowState, entry: Entry, partition: int | None) -> WindowState:
    """One event into a register rule's group: the registration kept as long as it stands, the
    last contact, and the deadlines that follow from them."""
    entries = sorted([*state.entries, entry])
    latest = entries[-1].at_ms
    standing = {e.uid for e in _latest_of_each_kind(entries)}
    contacts = [e for e in entries if e.tag == "expected"]
    if contacts:
        standing.add(contacts[-1].uid)
    cutoff = latest - rule.window_ms - rule.late_ms
    new = replace(state, entries=[e for e in entries if e.at_ms >= cutoff or e.uid in standing],
                  pending=list(state.pending), partition=partition if partition is not None else state.partition)
    kinds = members(new.entries)
    if not kinds:
        new.pending = []  # not (or no longer) a member: nothing is owed
        return new
    if rule.every is not None:
        new.pending = _next_contact(rule, new, kinds)
    elif entry.tag == "trigger":
        answered = any(e.tag == "expected" and entry.at_ms <= e.at_ms <= entry.at_ms + rule.within_ms
                       for e in new.entries)
        if not answered and not any(p.uid == entry.uid for p in new.pending):
            new.pending.append(Pending(entry.at_ms + rule.within_ms, entry.at_ms, entry.uid))
    elif entry.tag == "expected":  # a contact answers the triggers before it whose time has not run out
        new.pending = [p for p in new.pending if not (p.trigger_ms <= entry.at_ms <= p.deadline_ms)]
    return new


def _latest_of_each_kind(entries: list[Entry]) -> list[Entry]:
    """The last registration or deregistration of each kind (entries in time order)."""
    latest: dict[str, Entry] = {}
    for e in entries:
        if e.tag.startswith(("registered:", "deregistered:")):
            latest[e.tag.partition(":")[2]] = e
    return list(latest.values())


def _next_contact(rule: RegisterRule, state: WindowState, kinds: dict[str, Entry]) -> list[Pending]:
    """The one deadline of an ``every`` rule: the member's interval after the last contact, or
    after the registration when never heard from; none once a signal was raised for this
    silence: the next contact starts the clock again."""
    assert rule.every is not None
    interval = rule.every.of(sorted(kinds))
    if interval is None:
        return []
    start = min(kinds.values(), key=lambda e: e.at_ms)
    contacts = [e for e in state.entries if e.tag == "expected" and e.at_ms >= start.at_ms]
    since = contacts[-1] if contacts else start
    if state.anchor_ms == since.at_ms:
        return []
    return [Pending(since.at_ms + interval, since.at_ms, since.uid)]


def _owed_again(rule: RegisterRule, state: WindowState) -> WindowState:
    """A register rule's deadlines worked out again from the entries a merge joined: a visit
    under the other pseudonym answers a trigger, and the last contact under either counts."""
    kinds = members(state.entries)
    if not kinds:
        state.pending = []
    elif rule.every is not None:
        state.pending = _next_contact(rule, state, kinds)
    else:
        visits = [e.at_ms for e in state.entries if e.tag == "expected"]
        state.pending = [p for p in state.pending if not any(p.trigger_ms <= t <= p.deadline_ms for t in visits)]
    return state


def enrol(rule: RegisterRule, state: WindowState, uid: str, at_ms: int, partition: int) -> WindowState | None:
    """A member of an installed register (a grid of 网格台账) entered as registered at ``at_ms``;
    None when it is already (a register read again on every start)."""
    if any(e.uid == uid for e in state.entries):
        return None
    entry = Entry(at_ms, uid, Source.register.value, "register.member", "registered:", None, False)
    return register_step(rule, state, entry, partition)


def expire(rule: AbsenceRule | RegisterRule, state: WindowState, group: str, watermark_ms: int,
           now: datetime) -> list[Outcome]:
    """Signals for triggers whose deadline (and allowed lateness) the watermark has passed; the
    evidence is the trigger (or the last contact) and what made the place or member owed it.
    Each stays answerable (``unanswered``) for ANSWERABLE_MS past its deadline."""
    late_ms = rule.late_ms
    due = [p for p in state.pending if p.deadline_ms + late_ms <= watermark_ms]
    if not due:
        return []
    outcomes = []
    for deadline, trigger_ms, uid in due:
        drill = any(e.uid == uid and e.drill for e in state.entries)
        unanswered = [u for u in state.unanswered if u.deadline_ms + ANSWERABLE_MS >= watermark_ms]
        state = WindowState(state.entries, trigger_ms, 1, rule.level.value, to_ms(now),
                            [p for p in state.pending if p.uid != uid], state.partition, None,
                            [*unanswered, Unanswered(deadline, trigger_ms, uid, to_ms(now), group, drill)])
        outcomes.append(Outcome(state, _absence_signal(rule, state, group, uid, drill, now)))
    return outcomes


def _absence_signal(rule: AbsenceRule | RegisterRule, state: WindowState, group: str, uid: str, drill: bool,
                    now: datetime, answer: Entry | None = None) -> RiskSignal:
    """The signal of the trigger ``uid`` whose deadline passed (``state.anchor_ms`` its time),
    with the answer that came too late to prevent it, if one has."""
    evidence = [e for e in state.entries if e.uid == uid or e.tag == "requires" or e.tag.startswith("registered:")]
    if answer is not None:
        evidence = [*(e for e in evidence if e.uid != answer.uid), answer]
    return make_signal(rule, state, group, rule.level, region_of(rule, group, ""), drill, now, evidence)


def answer_late(rule: AbsenceRule | RegisterRule, state: WindowState, entry: Entry, group: str,
                watermark_ms: int, now: datetime) -> tuple[WindowState, list[RiskSignal]]:
    """迟到回应: an answer that happened before a deadline whose signal was raised already (it
    reached fengqiao late, while the partition's event time is not ANSWERABLE_MS past that
    deadline) answers that signal: it is updated as answered late (its case then closes
    itself). An expected event answers each such deadline it falls within; a partial one, those
    whose parts it completes. Returns the state without the deadlines answered."""
    if not state.unanswered or (entry.tag != "expected" and not entry.tag.startswith("part:")):
        return state, []
    t, entries = entry.at_ms, sorted({*state.entries, entry})
    answered = [u for u in state.unanswered if u.trigger_ms <= t <= u.deadline_ms
                and u.deadline_ms + ANSWERABLE_MS >= watermark_ms
                and (entry.tag == "expected" or _added_up(entries, u.trigger_ms, u.deadline_ms))]
    if not answered:
        return state, []
    signals = []
    for u in answered:
        was = WindowState(entries, u.trigger_ms, 2, rule.level.value, u.raised_ms, [], state.partition,
                          u.group if u.group != group else None)
        signal = _absence_signal(rule, was, group, u.uid, u.drill, now, answer=entry)
        signals.append(signal.model_copy(update={
            "answered_at": from_ms(t),
            "summary": f"{signal.summary}（迟到回应：{from_ms(t):%m-%d %H:%M}已在期限内回应，信号提出后才送达）"}))
    return replace(state, unanswered=[u for u in state.unanswered if u not in answered]), signals


def merge(rule: Any, into: WindowState, absorbed: WindowState, absorbed_group: str, group: str,
          region_code: str, now: datetime) -> Outcome:
    """One person's window (``absorbed``, kept under ``absorbed_group``) joins another's (``into``,
    under ``group``), the two found to be one person (同人合并). The entries and pending checks
    join; an open incident of ``into`` goes on; else an open incident of ``absorbed`` goes on
    under ``group`` as an update of its own signal (a link that came after a signal updates it
    rather than raising a second); else the joined window is judged as if one person's events
    had been seen all along, and may raise. ``region_code``: where the link was made, for a
    signal whose group names no place."""
    seen = {e.uid for e in into.entries}
    entries = sorted([*into.entries, *(e for e in absorbed.entries if e.uid not in seen)])
    waiting = {p.uid for p in into.pending}
    state = WindowState(entries, into.anchor_ms, into.version, into.level, into.raised_ms,
                        [*into.pending, *(p for p in absorbed.pending if p.uid not in waiting)],
                        into.partition if into.partition is not None else absorbed.partition, into.signal_group,
                        [*into.unanswered, *absorbed.unanswered])
    if isinstance(rule, RegisterRule):  # one person's registrations and visits together: what is owed now
        return Outcome(_owed_again(rule, state))
    if isinstance(rule, AbsenceRule) or not entries or into.anchor_ms is not None:
        return Outcome(state)
    previous = None
    if absorbed.anchor_ms is not None:
        state.anchor_ms, state.version, state.level = absorbed.anchor_ms, absorbed.version, absorbed.level
        state.raised_ms, state.signal_group = absorbed.raised_ms, absorbed.signal_group or absorbed_group
        previous = RiskLevel(absorbed.level) if absorbed.level else None
        span = [e for e in entries if state.anchor_ms <= e.at_ms <= state.anchor_ms + rule.window_ms]
    else:
        span = firing_span(rule, entries, entries[-1].at_ms, rule.window_ms) or []
        if not span:
            return Outcome(state)
        state.anchor_ms, state.version, state.raised_ms = span[0].at_ms, 0, to_ms(now)
    state.version += 1
    level = max(_level(rule, span), previous) if previous else _level(rule, span)
    state.level = level.value
    region = region_of(rule, group, region_code)
    drill = all(e.drill for e in span)
    return Outcome(state, make_signal(rule, state, group, level, region, drill, now, span), previous)


def region_of(rule: Any, group: str, fallback: str) -> str:
    """The 12-digit region a signal is about: its group's region when it groups by region."""
    first = rule.group_by[0]
    return pad(group.split("|", 1)[0]) if first.field == "region_code" else fallback


def make_signal(rule: Any, state: WindowState, group: str, level: RiskLevel, region_code: str, drill: bool,
                now: datetime, entries: list[Entry]) -> RiskSignal:
    entity_level = rule.group_by[0].level or Level.community
    shown = entries[-rule.max_evidence:]
    evidence = [Evidence(uid=e.uid, source=Source(e.source), category=e.category, occurred_at=from_ms(e.at_ms),
                         device=e.device) for e in shown]
    anchor = from_ms(state.anchor_ms or 0)
    place = registry().full_name(region_code) if region_code in registry() else region_code
    summary = rule.summary.format(place=place, count=len(entries), rule=rule.name,
                                  window_hours=round(rule.window.total_seconds() / 3600),
                                  window_days=round(rule.window.total_seconds() / 86400))
    chain = sorted({e.category.removeprefix("signal.") for e in entries if e.source == Source.signal.value})
    return RiskSignal(
        signal_id=state.signal_id(rule.id, group),
        version=state.version,
        rule_id=rule.id,
        rule_name=rule.name,
        level=level,
        entity_level=entity_level,
        entity=group,
        region_code=region_code,
        window_start=anchor,
        window_end=from_ms(max([state.anchor_ms or 0, *(e.at_ms for e in entries)])),
        raised_at=from_ms(state.raised_ms or to_ms(now)),
        updated_at=now,
        evidence=evidence,
        summary=summary,
        rule_chain=[*chain, rule.id],
        drill=drill,
        rule_version=rule.fingerprint,
    )


def signal_as_event(signal: RiskSignal, now: datetime) -> NormalisedEvent:
    """A raised signal as an event, so that rules can take it as evidence (chaining)."""
    return NormalisedEvent(
        event_id=signal.signal_id, publisher="signal", source=Source.signal,
        category=f"signal.{signal.rule_id}", region_code=signal.region_code, occurred_at=signal.window_end,
        ingested_at=now, level=signal.level, drill=signal.drill,
    )
