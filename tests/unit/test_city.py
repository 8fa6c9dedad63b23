"""The city in simulated time and the injected incidents: deterministic, shaped by the day and
the week, every input valid, every case on a street of its own, and the scoring arithmetic."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import orjson

from schemas.contracts.events import BEIJING, Source
from streams import topics
from streams.detection.ruleset import load_rules
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import DeadLetter, Origin, Validator
from streams.tools.incidents import Incident, Injector, injectable, off_case_streets, score
from streams.tools.simulator import CityModel, CityTimeline

MONDAY = datetime(2026, 11, 16, tzinfo=BEIJING)


def week(seed: int = 3, scale: float = 0.01) -> tuple[list, list[Incident]]:
    rules = load_rules()
    cases, _ = injectable(rules)
    incidents, _ = Injector("2102", seed).plan(cases, MONDAY, MONDAY + timedelta(days=7))
    timeline = CityTimeline(MONDAY, 7, scale=scale, seed=seed)
    return list(timeline.merged([x for i in incidents for x in i.inputs], off_case_streets(incidents, rules))), incidents


def test_the_same_seed_gives_the_same_city_and_another_seed_another():
    a, _ = week(seed=3)
    b, _ = week(seed=3)
    c, _ = week(seed=4)
    assert [(r[0], r[1], r[3]) for r in a] == [(r[0], r[1], r[3]) for r in b]
    assert [r[3] for r in a] != [r[3] for r in c]


def test_volumes_follow_the_day_and_the_week():
    records, _ = week(scale=0.05)
    grid = [r[0] for r in records if r[1] == topics.GRID_REPORTS.name]
    by_hour = Counter(t.hour for t in grid)
    assert by_hour[10] > 5 * by_hour[3]  # mid-morning against the small hours
    weekday = sum(1 for t in grid if t.weekday() < 5) / 5
    weekend = sum(1 for t in grid if t.weekday() >= 5) / 2
    assert 0.5 < weekend / weekday < 0.8  # CityModel.weekend = 0.65
    per_day = CityModel().grid_reports_per_day * 0.05
    assert abs(len(grid) / 7 - per_day * (5 + 2 * 0.65) / 7) < 0.05 * per_day
    assert records == sorted(records, key=lambda r: r[0])


def test_every_simulated_and_injected_input_is_valid():
    records, _ = week()
    validator, now = Validator(Pseudonymiser(b"k" * 32)), datetime.now(BEIJING)
    check = {topics.GRID_REPORTS.name: validator.grid_report, topics.DEPT_ALERTS.name: validator.dept_alert,
             topics.BROADCAST_RECEIPTS.name: validator.receipt,
             topics.EMERGENCY_BROADCASTS.name: lambda raw, o, n: validator.broadcast(raw, o, n, lambda key: None)}
    dead = [(topic, r.reason, r.field) for _, topic, _, value in records
            if isinstance(r := check[topic](orjson.dumps(value), Origin(topic, 0, 0), now), DeadLetter)]
    assert dead == []
    assert {r[1] for r in records} == set(check)  # every input kind appears


def test_each_case_has_a_street_and_a_time_of_its_own_and_is_due_within_the_week():
    _, incidents = week()
    assert len({i.street for i in incidents}) == len(incidents)
    assert len({i.tag for i in incidents}) == len(incidents)
    assert all(MONDAY < i.start and i.due < MONDAY + timedelta(days=7) for i in incidents)
    assert {i.rule_id for i in incidents if i.positive} >= {"dispute_cluster", "dispute_escalation", "fire_gas_hazard",
                                                            "welfare_under_weather_warning", "broadcast_coverage_gap",
                                                            "psychological_crisis", "group_petition"}
    for i in incidents:  # every region an incident touches is on its street
        for _, _, _, value in i.inputs:
            codes = {value.get("location", {}).get("region_code"), value.get("region_code")} - {None}
            codes |= {g["value"] for info in value.get("info", []) for a in info["area"] for g in a["geocode"]}
            assert all(code.startswith(i.street[:9]) for code in codes), (i.rule_id, codes)


def test_cases_that_hold_only_because_the_window_had_not_closed_are_left_out():
    _, skipped = injectable(load_rules())
    late = "an event arrives late: the week is published in time order"
    assert {(s.rule_id, s.case, s.reason) for s in skipped if s.rule_id != "patrol_gap" and s.reason != late} == {
        ("regular_contact", "near miss, visited every six days", "its outcome depends on the window not yet closing"),
        ("broadcast_coverage_gap", "near miss, the receipt is for another broadcast",
         "its outcome depends on the window not yet closing")}
    # a case whose answer reaches fengqiao late (迟到回应) cannot be published in time order
    assert {s.rule_id for s in skipped if s.reason == late} == {
        "broadcast_coverage_gap", "welfare_under_weather_warning", "regular_contact"}
    # a grid register's members are reference data, not inputs a city can publish
    assert {s.reason for s in skipped if s.rule_id == "patrol_gap"} == {
        "a member of the grid register: reference data, not an input"}


def test_scoring_counts_found_missed_decoys_background_and_chained_signals():
    when = MONDAY

    def incident(tag: str, rule: str, positive: bool) -> Incident:
        return Incident(tag, rule, "case", positive, "210202001000", when, when)

    incidents = [incident("q0001", "dispute_cluster", True), incident("q0002", "dispute_cluster", True),
                 incident("q0003", "dispute_cluster", False), incident("q0004", "group_petition", True),
                 incident("q0005", "dispute_cluster", False)]
    signals = [
        {"signal_id": "sig-a", "rule_id": "dispute_cluster", "raised_at": "1", "evidence": ["grid:q0001-e0", "grid:q0001-e1"]},
        {"signal_id": "sig-b", "rule_id": "dispute_cluster", "raised_at": "2", "evidence": ["grid:q0003-e2"]},
        {"signal_id": "sig-0d", "rule_id": "dispute_cluster", "raised_at": "2", "evidence": ["grid:q0002-e0",
                                                                                             "grid:sim-00000007"]},
        {"signal_id": "sig-c", "rule_id": "dispute_cluster", "raised_at": "3", "evidence": ["grid:sim-00000001"]},
        {"signal_id": "sig-0c", "rule_id": "dispute_cluster", "raised_at": "3", "evidence": ["grid:q0005-e0",
                                                                                             "grid:sim-00000002"]},
        {"signal_id": "sig-0e", "rule_id": "group_petition", "raised_at": "4", "evidence": ["signal:sig-0f"]},
        {"signal_id": "sig-0f", "rule_id": "petition_cluster", "raised_at": "4", "evidence": ["petition:q0004-e0"]},
    ]
    got = {s.rule_id: s for s in score(signals, incidents, ["dispute_cluster", "group_petition", "petition_cluster"])}
    d = got["dispute_cluster"]
    assert (d.incidents, d.found, d.decoys, d.fired_on_decoys, d.from_background) == (2, 2, 2, 1, 1)
    assert (d.recall, round(d.precision, 2)) == (1.0, 0.67)
    assert d.decoys_joined_by_background == 1  # q0005: a background report completed it
    assert (got["group_petition"].found, got["group_petition"].recall) == (1, 1.0)  # through the chained signal, listed first


def test_the_background_keeps_off_a_case_what_its_rule_would_take():
    """Else a real visit in the simulated city would answer a "no visit" case (the quality bench
    found one at 5% of the volume), or a real third dispute complete a decoy."""
    rules = {r.id: r for r in load_rules()}
    records, incidents = week(scale=0.05)
    injected = {id(x) for i in incidents for x in i.inputs}
    background = [r for r in records if id(r) not in injected and r[1] == topics.GRID_REPORTS.name]
    near = 0
    for i in incidents:
        rule = rules[i.rule_id]
        for at, _, _, report in background:
            if report["location"]["region_code"][:9] == i.street[:9]:
                taken = rule.admits(Source.grid_report, report["category"])
                if i.start - rule.window <= at <= i.due + rule.window:
                    assert not taken, (i.rule_id, i.case, report["category"])
                    near += 1
    assert near, "what the case's rule does not take still happens around it"
    whole = CityTimeline(MONDAY, 7, scale=0.05, seed=3)
    assert len(background) > 0.9 * whole_count(whole)  # the city is otherwise whole


def whole_count(timeline: CityTimeline) -> int:
    return sum(1 for r in timeline.background() if r[1] == topics.GRID_REPORTS.name)
