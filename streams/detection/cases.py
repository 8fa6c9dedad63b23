"""Rule test cases (规则用例): events in, signals expected, near misses that must not fire.

Each rule file carries its cases under ``tests``. A case lists events relative to a base time,
written compactly, and the signals of its own rule it expects by level and entity (none for a
near miss). Cases run through the same ``Correlator`` as the worker, with the whole pack
loaded, so chained rules behave as they do live. ``until`` moves the event-time watermark on
with a neutral event, so that absence deadlines can fall due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.contracts.events import BEIJING, NormalisedEvent, Source
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import RiskSignal
from streams.detection.correlation import Correlator, DictStates
from streams.detection.ruleset import parse_duration

BASE = datetime(2026, 11, 20, 8, 0, tzinfo=BEIJING)


@dataclass(frozen=True)
class CaseResult:
    rule: str
    case: str
    expected: list[tuple[str, str]]  # (level, entity)
    got: list[tuple[str, str]]

    @property
    def passed(self) -> bool:
        return self.expected == self.got


def make_event(n: int, spec: dict[str, Any]) -> NormalisedEvent:
    source = Source(spec.get("source", "grid_report"))
    return NormalisedEvent(
        event_id=spec.get("id", f"case-{n}"),
        publisher=spec.get("publisher", source.value),
        source=source,
        category=spec["category"],
        region_code=spec["region"],
        occurred_at=BASE + parse_duration(spec.get("at", "0s")),
        ingested_at=BASE,
        level=RiskLevel(spec["level"]) if spec.get("level") else None,
        subjects=spec.get("subjects", []),
        attributes={k: str(v) for k, v in spec.get("attributes", {}).items()},
        drill=spec.get("drill", False),
    )


def run_case(rules: list[Any], rule: Any, case: dict[str, Any]) -> tuple[CaseResult, list[RiskSignal]]:
    events = [make_event(n, spec) for n, spec in enumerate(case["events"])]
    if "until" in case:  # a neutral event that only moves event time on
        last = events[-1]
        events.append(make_event(len(events), {"category": "environment.sanitation", "region": last.region_code,
                                                "at": case["until"], "id": "watermark"}))
    correlator, states, signals = Correlator(rules), DictStates(), {}
    for event in events:
        for outcome in correlator.process(event, 0, states, event.occurred_at):
            signals[outcome.signal.signal_id] = outcome.signal
    got = sorted((s.level.value, s.entity) for s in signals.values() if s.rule_id == rule.id)
    expected = sorted((e["level"], str(e["entity"])) for e in case.get("expect", []))
    return CaseResult(rule.id, case["name"], expected, got), list(signals.values())


def run_all(rules: list[Any]) -> list[CaseResult]:
    return [run_case(rules, rule, case)[0] for rule in rules for case in rule.tests]
