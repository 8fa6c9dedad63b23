"""Which silences (静默) hold a signal back, as a pure function: the correlate step stores a
silenced signal, marked, and sends no notice for it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from schemas.contracts.events import Source
from schemas.contracts.signals import RiskSignal
from schemas.contracts.silences import Silence


def matches(silence: Silence, signal: RiskSignal) -> bool:
    """Every matcher the silence gives matches the signal (its time aside). A publisher or a
    device matches when every input among the evidence is the publisher's, or the device's: a
    grid worker's report beside a silenced alarm still pages."""
    inputs = [e for e in signal.evidence if e.source is not Source.signal]
    return (signal.region_code.startswith(silence.region_code)
            and (silence.rule_id is None or silence.rule_id == signal.rule_id)
            and (silence.entity is None or silence.entity == signal.entity)
            and (silence.publisher is None or
                 (bool(inputs) and all(e.uid.startswith(f"{silence.publisher}:") for e in inputs)))
            and (silence.device is None or (bool(inputs) and all(e.device == silence.device for e in inputs))))


def silenced_by(silences: Iterable[Silence], signal: RiskSignal, now: datetime) -> list[str]:
    """The ids of the silences active at ``now`` that match ``signal``; a drill is never paged
    anyway and is not held back."""
    if signal.drill:
        return []
    return sorted(s.silence_id for s in silences if s.active(now) and matches(s, signal))
