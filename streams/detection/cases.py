"""Rule test cases (规则用例): events in, signals expected, near misses that must not fire.

Each rule file carries its cases under ``tests``. A case lists events relative to a base time,
written compactly, and the signals of its own rule it expects by level and entity (none for a
near miss). Cases run through the same ``Correlator`` as the worker, with the whole pack
loaded, so chained rules behave as they do live. ``until`` moves the event-time watermark on
with a neutral event, so that absence deadlines can fall due. Events are read in the order
listed, whatever their times: an event listed after a later one reached fengqiao late (a grid
app that synced late), and a case can show what that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.contracts.events import BEIJING, NormalisedEvent
from schemas.contracts.signals import RiskSignal
from streams.detection.correlator import Correlator, DictStates
from streams.detection.ruleset import CaseEvent, RuleCase
from streams.intake.addresses import building_key

BASE = datetime(2026, 11, 20, 8, 0, tzinfo=BEIJING)


@dataclass(frozen=True)
class CaseResult:
    rule: str
    case: str
    expected: list[tuple[str, ...]]  # (level, entity), with "answered late" when it was
    got: list[tuple[str, ...]]

    @property
    def passed(self) -> bool:
        return self.expected == self.got


def with_building(attributes: dict[str, str]) -> dict[str, str]:
    """A case's attributes as validation makes them: an address brings its building key."""
    if "address" in attributes and "building" not in attributes:
        attributes["building"] = building_key(attributes["address"])
    return attributes


def make_event(n: int, spec: CaseEvent | dict[str, Any]) -> NormalisedEvent:
    """The ``n``-th event of a case, from its typed form or as the YAML writes it."""
    if isinstance(spec, dict):
        spec = CaseEvent.model_validate(spec)
    return NormalisedEvent(
        event_id=spec.id or f"case-{n}",
        publisher=spec.publisher or spec.source.value,
        source=spec.source,
        category=spec.category,
        region_code=spec.region,
        grid_code=spec.grid,
        occurred_at=BASE + spec.at,
        ingested_at=BASE,
        level=spec.level,
        subjects=list(spec.subjects),
        attributes=with_building(dict(spec.attributes)),
        drill=spec.drill,
    )


def run_case(rules: list[Any], rule: Any, case: RuleCase) -> tuple[CaseResult, list[RiskSignal]]:
    events = [make_event(n, spec) for n, spec in enumerate(case.events)]
    if case.until is not None:  # a neutral event that only moves event time on
        last = events[-1]
        events.append(make_event(len(events), CaseEvent(category="environment.sanitation", region=last.region_code,
                                                        at=case.until, id="watermark")))
    correlator, states, signals = Correlator(rules), DictStates(), {}
    for event in events:
        for outcome in correlator.process(event, 0, states, event.occurred_at):
            signals[outcome.signal.signal_id] = outcome.signal
    got = sorted((s.level.value, s.entity, *(["answered late"] if s.answered_at else []))
                 for s in signals.values() if s.rule_id == rule.id)
    expected = sorted((e.level.value, e.entity, *(["answered late"] if e.answered else [])) for e in case.expect)
    return CaseResult(rule.id, case.name, expected, got), list(signals.values())


def run_all(rules: list[Any]) -> list[CaseResult]:
    return [run_case(rules, rule, case)[0] for rule in rules for case in rule.tests]
