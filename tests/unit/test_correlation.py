from datetime import timedelta

import pytest

from schemas.contracts.events import NormalisedEvent
from schemas.contracts.levels import RiskLevel
from streams.detection.correlator import Correlator, DictStates
from streams.detection.ruleset import load_rules
from streams.detection.windows import STATE_FORMAT, Entry, Pending, StateFormatError, WindowState, observe
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import Validator
from tests.helpers import COMMUNITY, OTHER_COMMUNITY, T0, grid_report

V = Validator(Pseudonymiser(b"k"))
RULE = {r.id: r for r in load_rules()}["dispute_cluster"]


def event(n: int, **kw) -> NormalisedEvent:
    from schemas.contracts.events import GridReport

    return V.normalise_grid_report(GridReport.model_validate(grid_report(n, **kw)), T0)


def run(events):
    """Feed events through the rule the way the correlate step does; return the outcomes with signals."""
    correlator, states = Correlator([RULE]), DictStates()
    return [out for e in events for out in correlator.process(e, 0, states, T0) if out.signal.rule_id == RULE.id]


def test_three_disputes_in_a_community_raise_a_yellow_signal_then_update_it():
    outs = run([event(1), event(2), event(3), event(4)])
    assert [o.signal.version for o in outs] == [1, 2]
    first, second = outs[0].signal, outs[1].signal
    assert first.level is RiskLevel.yellow and first.entity == COMMUNITY
    assert first.signal_id == second.signal_id
    assert outs[0].escalated and not outs[1].escalated
    assert [e.uid for e in second.evidence] == [f"grid:t-00000{i}" for i in (1, 2, 3, 4)]
    assert "矛盾纠纷4起" in second.summary and "春德社区" in second.summary


def test_near_misses_do_not_fire():
    spread = [event(1), event(2, community=OTHER_COMMUNITY), event(3)]
    assert run(spread) == []
    not_disputes = [event(i, category="hazard.fire") for i in range(1, 6)]
    assert run(not_disputes) == []
    slow = [event(1), event(2, at=T0 + timedelta(hours=13)), event(3, at=T0 + timedelta(hours=25))]
    assert run(slow) == []


def test_redelivered_and_too_late_events_change_nothing():
    state = WindowState()
    for n in (1, 2):
        state = observe(RULE, state, event(n), COMMUNITY, "", T0).state
    again = observe(RULE, state, event(2), COMMUNITY, "", T0)
    assert again.state is state and again.signal is None
    late = observe(RULE, state, event(9, at=T0 - timedelta(days=2)), COMMUNITY, "", T0)
    assert late.state is state


def test_replay_gives_the_same_signal_ids():
    events = [event(i) for i in range(1, 8)] + [event(20, at=T0 + timedelta(days=3 + i)) for i in range(3)]
    first = [o.signal.signal_id for o in run(events)]
    assert first == [o.signal.signal_id for o in run(events)]


def test_a_new_incident_after_the_window_gets_a_new_id():
    burst1 = [event(i) for i in (1, 2, 3)]
    later = T0 + timedelta(days=3)
    burst2 = [event(10 + i, at=later + timedelta(minutes=i)) for i in range(3)]
    ids = {o.signal.signal_id for o in run(burst1 + burst2)}
    assert len(ids) == 2
    entry = Entry(1, "a", "grid_report", "x", "", None, False)
    state = WindowState.from_json(WindowState([entry], 1, 1, "yellow", 1, [Pending(5, 1, "a")]).to_json())
    assert state.entries == [entry] and state.pending == [Pending(5, 1, "a")]


def test_window_state_is_written_with_its_format_and_reads_the_previous_one():
    """Format 1 (before the format was marked) is the same arrays: a worker reads it as it is."""
    written = WindowState([Entry(1, "a", "grid_report", "x", "", None, True)], 1, 1, "yellow", 1,
                          [Pending(9, 1, "a")], 3).to_json()
    assert written["format"] == STATE_FORMAT == 4 and written["signal_group"] is None and written["unanswered"] == []
    assert written["entries"] == [[1, "a", "grid_report", "x", "", None, True, ""]]  # format 1's, and a device
    previous = {k: v for k, v in written.items() if k not in ("format", "signal_group", "unanswered")}
    previous["entries"] = [e[:7] for e in previous["entries"]]
    state = WindowState.from_json(previous)
    assert state.entries[0].drill is True and state.pending[0].deadline_ms == 9 and state.partition == 3


def test_a_window_state_of_a_newer_format_is_refused_by_name():
    with pytest.raises(StateFormatError, match="format 5; this worker reads formats 1 to 4"):
        WindowState.from_json({"format": 5, "entries": []})


def test_a_reload_keeps_the_windows_of_unchanged_rules_and_starts_changed_ones_afresh():
    correlator, states = Correlator([RULE]), DictStates()
    for n in (1, 2):
        correlator.process(event(n), 0, states, T0)
    changes = correlator.replace_rules(load_rules())
    assert changes["unchanged"] == ["dispute_cluster"] and "psychological_crisis" in changes["added"]
    assert [o.signal.rule_id for o in correlator.process(event(3), 0, states, T0)
            if o.signal.rule_id != "entity_risk"] == ["dispute_cluster"]

    correlator, states = Correlator([RULE]), DictStates()
    for n in (1, 2):
        correlator.process(event(n), 0, states, T0)
    stricter = RULE.model_copy(update={"threshold": 2})
    assert correlator.replace_rules([stricter])["changed"] == ["dispute_cluster"]
    assert correlator.process(event(3), 0, states, T0) == []  # a fresh window holds one event
    assert [o.signal.version for o in correlator.process(event(4), 0, states, T0)
            if o.signal.rule_id == RULE.id] == [1]


def test_allowed_lateness_lets_a_late_event_still_count():
    lenient = RULE.model_copy(update={"allowed_lateness": timedelta(hours=3)})
    h = lambda n: T0 + timedelta(hours=n)  # noqa: E731
    # 20 h and 30 h, then 45 h (its window holds 30 h and 45 h: two); then a report from 18 h
    # arrives late: the window from 18 h to 42 h holds 18, 20 and 30 h: three.
    stream = [event(1, at=h(20)), event(2, at=h(30)), event(3, at=h(45)), event(4, at=h(18))]
    for rule, fires in ((RULE, False), (lenient, True)):
        correlator, states = Correlator([rule]), DictStates()
        out = [o for e in stream for o in correlator.process(e, 0, states, T0) if o.signal.rule_id == rule.id]
        assert bool(out) is fires, rule.allowed_lateness
        if fires:
            assert [e.uid for e in out[0].signal.evidence] == ["grid:t-000004", "grid:t-000001", "grid:t-000002"]


def test_a_late_event_never_makes_a_window_longer():
    lenient = RULE.model_copy(update={"allowed_lateness": timedelta(hours=3)})
    h = lambda n: T0 + timedelta(hours=n)  # noqa: E731
    stream = [event(1, at=h(26)), event(2, at=h(25)), event(3, at=h(0.5))]  # 25.5 h from first to last
    correlator, states = Correlator([lenient]), DictStates()
    assert [o for e in stream for o in correlator.process(e, 0, states, T0) if o.signal.rule_id == RULE.id] == []


ELDER = {"source": "dept_alert", "category": "civil_affairs.population_registered", "subjects": ["p-zhang"],
         "attributes": {"register": "registered", "population": "elderly_alone"}}  # as intake normalises it
COLD_WAVE = {"source": "dept_alert", "category": "weather.cold_wave", "attributes": {"hazard": "cold_wave"}}


def test_a_source_running_ahead_does_not_make_an_absence_fire_early():
    """A welfare visit (grid report) still in its topic while department alerts run days ahead:
    the watermark waits for the grid source, so the visit arrives in time and nothing fires;
    once the grid source falls silent, the department's time moves the watermark alone."""
    from streams.detection.ruleset import load_rules

    pack = load_rules()
    wall = [0.0]
    correlator, states = Correlator(pack, source_idle=30, wallclock=lambda: wall[0]), DictStates()

    def feed(spec: dict, n: int) -> list:
        from streams.detection.cases import make_event
        return [o.signal.rule_id for o in correlator.process(make_event(n, spec), 0, states, T0) if o.signal]

    wall[0] = 31  # past the start-up grace
    feed({"category": "environment.sanitation", "region": "210202001002", "at": "0h"}, 0)  # the grid source is live
    fired = feed({**ELDER, "region": "210202001004", "at": "0h"}, 1)
    fired += feed({**COLD_WAVE, "region": "210202000000", "at": "10h"}, 2)
    fired += feed({"source": "dept_alert", "category": "police.fight", "region": "210202001003", "at": "100h"}, 3)
    assert "welfare_under_weather_warning" not in fired  # the grid source is still at 0h
    fired += feed({"category": "care.elderly_alone", "region": "210202001004", "at": "30h", "subjects": ["p-zhang"]}, 4)
    wall[0] = 70  # the grid source falls silent; the department's time now counts alone
    fired += feed({"source": "dept_alert", "category": "police.fight", "region": "210202001003", "at": "101h"}, 5)
    assert "welfare_under_weather_warning" not in fired  # the visit came within 48 hours


def test_an_expected_event_read_before_its_trigger_still_answers_it():
    """The terminals' receipt read before the broadcast it confirms (receipts ran ahead)."""
    from streams.detection.cases import make_event
    from streams.detection.ruleset import load_rules

    correlator, states = Correlator(load_rules()), DictStates()
    events = [
        {"source": "broadcast_receipt", "category": "broadcast.receipt", "region": "210202000000", "at": "5m",
         "attributes": {"broadcast": "dalian-ebs,B1", "complete": "true"}},
        {"source": "broadcast", "category": "broadcast.alert", "region": "210202000000", "at": "0m",
         "attributes": {"broadcast": "dalian-ebs,B1"}},
        {"category": "environment.sanitation", "region": "210202001004", "at": "2h"},
    ]
    fired = [o.signal.rule_id for n, spec in enumerate(events)
             for o in correlator.process(make_event(n, spec), 0, states, T0) if o.signal]
    assert "broadcast_coverage_gap" not in fired


def test_an_absence_falls_due_once_its_sources_fall_silent_without_another_event():
    """The last input of a replay is a broadcast nobody confirmed: no later event moves the
    watermark, so ``advance`` does, once the sources holding it back have been silent."""
    from streams.detection.cases import make_event

    wall = [0.0]
    correlator, states = Correlator(load_rules(), source_idle=30, wallclock=lambda: wall[0]), DictStates()
    broadcast = {"source": "broadcast", "category": "broadcast.alert", "region": "210202000000", "at": "0m",
                 "attributes": {"broadcast": "dalian-ebs,B1"}}
    late = {"category": "environment.sanitation", "region": "210202001004", "at": "2h"}
    wall[0] = 31
    assert not correlator.process(make_event(0, broadcast), 0, states, T0)
    assert not correlator.process(make_event(1, late), 0, states, T0)  # the broadcast source still holds it
    assert correlator.advance(0, states, T0) == []  # both sources spoke a moment ago
    wall[0] = 62  # both silent for more than 30 s: the watermark moves to the latest time seen, 2 h
    assert [o.signal.rule_id for o in correlator.advance(0, states, T0)] == ["broadcast_coverage_gap"]
    assert correlator.advance(0, states, T0) == []  # once


def test_live_a_quiet_place_s_deadline_falls_due_on_the_wall_clock_and_in_a_replay_on_event_time_alone():
    """A broadcast at 08:30 to a district that sends nothing more: live (the clock given, as the
    step gives it when nothing is left to read), its coverage gap falls due once the clock
    passes 09:00 plus the sources' idle bound; in a replay (no clock) the watermark stays at
    08:30 and nothing falls due."""
    from streams.detection.cases import BASE, make_event
    from streams.detection.windows import to_ms

    broadcast = {"source": "broadcast", "category": "broadcast.alert", "region": "210202000000", "at": "30m",
                 "attributes": {"broadcast": "dalian-ebs,B1"}}
    deadline = to_ms(BASE + timedelta(hours=1))  # 08:30 + 30 min ("within: 30m"), BASE being 08:00
    for live in (True, False):
        wall = [0.0]
        correlator, states = Correlator(load_rules(), source_idle=30, wallclock=lambda: wall[0]), DictStates()
        assert not correlator.process(make_event(0, broadcast), 0, states, T0)
        wall[0] = 31
        assert correlator.idle(0)
        clock = (lambda ms: ms) if live else (lambda ms: None)
        assert correlator.advance(0, states, T0, clock(deadline)) == []  # 09:00: less the idle bound, not yet
        assert correlator.advance(0, states, T0, clock(deadline + 29_000)) == []
        fired = correlator.advance(0, states, T0, clock(deadline + 61_000))  # the next minute's check
        assert [o.signal.rule_id for o in fired] == (["broadcast_coverage_gap"] if live else [])


def test_the_wall_clock_never_moves_a_partition_whose_sources_still_speak():
    from streams.detection.cases import make_event
    from streams.detection.windows import to_ms

    wall = [0.0]
    correlator, states = Correlator(load_rules(), source_idle=30, wallclock=lambda: wall[0]), DictStates()
    wall[0] = 31
    broadcast = {"source": "broadcast", "category": "broadcast.alert", "region": "210202000000", "at": "0m",
                 "attributes": {"broadcast": "dalian-ebs,B1"}}
    correlator.process(make_event(0, broadcast), 0, states, T0)
    assert not correlator.idle(0)
    assert correlator.advance(0, states, T0, to_ms(T0 + timedelta(days=1))) == []


def test_an_absence_signal_feeds_risk_as_every_signal_does():
    """The welfare rule declares a risk score of 20: the missed visit it raises puts its community
    and the person owed it on blue (entity_risk), as a dispute cluster's would."""
    from streams.detection.cases import make_event

    correlator, states = Correlator(load_rules()), DictStates()
    inputs = [
        {**ELDER, "at": "0h", "region": "210202001004"},
        {**COLD_WAVE, "at": "10h", "region": "210202000000"},
        {"at": "60h", "category": "environment.sanitation", "region": "210202001004"},
    ]
    fired = [o.signal for n, spec in enumerate(inputs) for o in correlator.process(make_event(n, spec), 0, states, T0)
             if o.signal]
    assert [(s.rule_id, s.level) for s in fired] == [("welfare_under_weather_warning", RiskLevel.yellow),
                                                    ("entity_risk", RiskLevel.blue), ("entity_risk", RiskLevel.blue)]
    assert {s.entity for s in fired[1:]} == {"community:210202001004", "person:210202|p-zhang"}


def test_a_district_s_event_is_no_community_of_its_own():
    """A community rule counts events placed in a community; a district-wide alert is not one."""
    from streams.detection.cases import make_event

    rule = next(r for r in load_rules() if r.id == "welfare_under_weather_warning")
    district = make_event(0, {**ELDER, "region": "210202000000"})
    community = make_event(1, {**ELDER, "region": "210202001004"})
    assert rule.groups(district) == [] and rule.groups(community) == ["210202001004|p-zhang"]


def test_a_city_wide_warning_reaches_the_registered_places_of_another_county_s_partition():
    """The city-wide warning's copy in a county's partition (``reach``) reaches the places held
    there; it raises nothing of its own groups, which are the original's."""
    from streams.detection.cases import make_event

    correlator, partition3 = Correlator(load_rules()), DictStates()
    elder = {**ELDER, "region": "210203004003", "at": "0h"}
    warning = {**COLD_WAVE, "region": "210200000000", "at": "10h"}
    later = {"category": "environment.sanitation", "region": "210203004003", "at": "60h"}
    correlator.process(make_event(0, elder), 3, partition3, T0)
    assert correlator.process(make_event(1, warning), 3, partition3, T0, reach="210203") == []
    fired = [o.signal for o in correlator.process(make_event(2, later), 3, partition3, T0) if o.signal]
    assert [(s.rule_id, s.region_code) for s in fired][:1] == [("welfare_under_weather_warning", "210203004003")]
    # without the copy, the original in its own partition never sees that place
    alone, original = Correlator(load_rules()), DictStates()
    alone.process(make_event(0, elder), 3, DictStates(), T0)
    alone.process(make_event(1, warning), 5, original, T0)
    assert not [k for k in original if k.startswith("welfare")]


def test_the_events_of_a_wide_area_reach_every_county_under_it():
    from streams.detection.cases import make_event

    city = make_event(0, {"source": "dept_alert", "category": "weather.cold_wave", "region": "210200000000"})
    county = make_event(1, {"source": "dept_alert", "category": "weather.cold_wave", "region": "210202000000"})
    reached = city.reach()
    assert "210202" in reached and "210203" in reached and all(c.startswith("2102") and len(c) == 6 for c in reached)
    assert county.reach() == [] and make_event(2, {"category": "dispute.neighbour", "region": COMMUNITY}).reach() == []


def test_an_event_too_late_for_its_windows_is_noted_with_the_signal_it_would_have_changed():
    correlator, states = Correlator([RULE]), DictStates()
    raised = [o.signal for e in (event(1), event(2), event(3)) for o in correlator.process(e, 0, states, T0)
              if o.signal.rule_id == RULE.id]
    late = event(4, at=T0 - timedelta(days=2))  # a grid app that synced two days late
    assert correlator.process(late, 0, states, T0) == []
    [note] = correlator.take_late()
    assert (note.uid, note.rule_id, note.signal_id) == (late.uid, RULE.id, raised[-1].signal_id)
    assert note.late_by_s == pytest.approx(24 * 3600 + 3 * 60)  # 2 days behind, less the 24 h window
    assert correlator.take_late() == []


def test_a_drill_s_gap_answered_days_later_is_answered_as_a_drill_once_and_kept_until_then():
    """迟到回应 after the window let the trigger go: the signal is still answered, still a drill
    (never a live centre's), and a second copy of the receipt answers nothing more."""
    from streams.detection.cases import make_event

    gap = {r.id: r for r in load_rules()}["broadcast_coverage_gap"]
    correlator, states = Correlator([gap]), DictStates()
    area, broadcast = "210202000000", "dalian-ebs,D1"
    alert = make_event(0, {"at": "0m", "source": "broadcast", "category": "broadcast.alert", "region": area,
                           "attributes": {"broadcast": broadcast}, "drill": True})
    later = make_event(1, {"at": "50h", "source": "broadcast", "category": "broadcast.alert", "region": area,
                           "attributes": {"broadcast": broadcast}, "id": "next"})
    receipt = make_event(2, {"at": "20m", "source": "broadcast_receipt", "category": "broadcast.receipt",
                             "region": area, "attributes": {"broadcast": broadcast, "complete": "true"}})
    raised = [o.signal for e in (alert, later) for o in correlator.process(e, 0, states, e.occurred_at)]
    assert [(s.version, s.drill, s.answered_at) for s in raised] == [(1, True, None)]
    answered = [o.signal for o in correlator.process(receipt, 0, states, later.occurred_at)]
    assert [(s.signal_id, s.version, s.drill, s.answered_at) for s in answered] == [
        (raised[0].signal_id, 2, True, receipt.occurred_at)]
    assert correlator.process(receipt, 0, states, later.occurred_at) == []


def test_an_answer_reaching_fengqiao_more_than_seven_days_after_the_deadline_answers_nothing():
    """迟到回应 has its bound: the partition's event time a week past the deadline, the gap stands."""
    from streams.detection.cases import make_event

    gap = {r.id: r for r in load_rules()}["broadcast_coverage_gap"]
    correlator, states = Correlator([gap]), DictStates()
    area, broadcast = "210202000000", "dalian-ebs,W1"
    alert = make_event(0, {"at": "0m", "source": "broadcast", "category": "broadcast.alert", "region": area,
                           "attributes": {"broadcast": broadcast}})
    week_on = make_event(1, {"at": "170h", "category": "environment.sanitation", "region": area})
    receipt = make_event(2, {"at": "20m", "source": "broadcast_receipt", "category": "broadcast.receipt",
                             "region": area, "attributes": {"broadcast": broadcast, "complete": "true"}})
    raised = [o.signal for e in (alert, week_on) for o in correlator.process(e, 0, states, e.occurred_at)]
    assert [s.rule_id for s in raised] == ["broadcast_coverage_gap"]
    assert correlator.process(receipt, 0, states, week_on.occurred_at) == []
