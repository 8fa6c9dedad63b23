"""Notification planning: what a raised or updated signal sends, as a pure function."""

from datetime import timedelta

from schemas.contracts.levels import RiskLevel
from streams import topics
from streams.notify.planning import Notified, channel, plan
from streams.notify.routing import DEFAULT_POLICY
from tests.helpers import T0
from tests.unit.test_routing import signal_at

REPEAT = timedelta(minutes=30)


def test_a_new_signal_notifies_its_centres_with_fresh_deadlines():
    sent = plan(signal_at(RiskLevel.yellow), True, None, T0, DEFAULT_POLICY, REPEAT)
    assert [n.centre_code for n in sent.notices] == ["210202001004", "210202001"]
    assert not any(n.is_update for n in sent.notices)
    assert sent.notified == Notified(int(T0.timestamp() * 1000), T0 + timedelta(hours=2), T0 + timedelta(hours=72))
    assert sent.release is None  # only red asks for a warning to be released


def test_more_evidence_within_the_repeat_interval_sends_nothing():
    last = Notified(int(T0.timestamp() * 1000), T0 + timedelta(hours=2), T0 + timedelta(hours=72))
    sent = plan(signal_at(RiskLevel.yellow), False, last, T0 + timedelta(minutes=29), DEFAULT_POLICY, REPEAT)
    assert sent.notices == [] and sent.notified is None


def test_an_update_after_the_interval_keeps_the_deadlines_and_pages_no_one():
    last = Notified(int(T0.timestamp() * 1000), T0 + timedelta(hours=2), T0 + timedelta(hours=72))
    later = T0 + timedelta(minutes=31)
    sent = plan(signal_at(RiskLevel.yellow), False, last, later, DEFAULT_POLICY, REPEAT)
    assert sent.notices and all(n.is_update for n in sent.notices)
    assert all((n.ack_due, n.close_due) == (last.ack_due, last.close_due) for n in sent.notices)
    assert sent.notified is not None and sent.notified.at_ms == int(later.timestamp() * 1000)


def test_an_answer_found_late_updates_the_centres_at_once_whatever_the_interval():
    """迟到回应: the centres are told within the repeat interval, in place, with their deadlines."""
    last = Notified(int(T0.timestamp() * 1000), T0 + timedelta(hours=2), T0 + timedelta(hours=72))
    answered = signal_at(RiskLevel.yellow).model_copy(update={"answered_at": T0 - timedelta(minutes=10)})
    sent = plan(answered, False, last, T0 + timedelta(minutes=1), DEFAULT_POLICY, REPEAT)
    assert sent.notices and all(n.is_update and n.answered_at == T0 - timedelta(minutes=10) for n in sent.notices)
    assert all((n.ack_due, n.close_due) == (last.ack_due, last.close_due) for n in sent.notices)


def test_an_update_of_a_signal_never_notified_sends_nothing():
    assert plan(signal_at(RiskLevel.yellow), False, None, T0, DEFAULT_POLICY, REPEAT).notices == []


def test_an_escalation_notifies_again_with_the_new_levels_deadlines():
    last = Notified(int(T0.timestamp() * 1000), T0 + timedelta(hours=2), T0 + timedelta(hours=72))
    later = T0 + timedelta(minutes=5)
    sent = plan(signal_at(RiskLevel.red), True, last, later, DEFAULT_POLICY, REPEAT)
    assert len(sent.notices) == 4 and sent.notices[0].ack_due == later + timedelta(minutes=15)
    assert sent.release is not None and sent.release.scope == "Restricted"


def test_a_red_update_drafts_no_second_warning():
    last = Notified(int(T0.timestamp() * 1000), T0 + timedelta(minutes=15), T0 + timedelta(hours=12))
    sent = plan(signal_at(RiskLevel.red), False, last, T0 + timedelta(hours=1), DEFAULT_POLICY, REPEAT)
    assert sent.notices and sent.release is None


def test_a_drill_goes_to_the_drill_channel_and_drafts_no_warning():
    drill = signal_at(RiskLevel.red).model_copy(update={"drill": True})
    sent = plan(drill, True, None, T0, DEFAULT_POLICY, REPEAT)
    assert sent.notices and {channel(n) for n in sent.notices} == {topics.DRILL_NOTICES}
    assert sent.release is None
    live = plan(signal_at(RiskLevel.red), True, None, T0, DEFAULT_POLICY, REPEAT)
    assert {channel(n) for n in live.notices} == {topics.CENTRE_NOTICES}


def test_a_region_no_centre_holds_plans_no_notice_instead_of_failing():
    """A region the registry does not know (110000000000) has no centre: nothing to send, nothing kept."""
    elsewhere = signal_at(RiskLevel.red).model_copy(update={"region_code": "110000000000"})
    sent = plan(elsewhere, True, None, T0, DEFAULT_POLICY, REPEAT)
    assert sent.notices == [] and sent.notified is None and sent.release is None


def test_a_province_wide_signal_plans_a_notice_for_each_city_of_the_province():
    province = signal_at(RiskLevel.red).model_copy(update={"region_code": "210000000000"})
    sent = plan(province, True, None, T0, DEFAULT_POLICY, REPEAT)
    assert [n.centre_code for n in sent.notices] == ["2101", "2102"] and sent.notified is not None


def test_what_is_kept_of_a_notification_reads_back_as_written():
    kept = Notified(1, T0, T0 + timedelta(days=1))
    assert Notified.from_json(kept.to_json()) == kept
    assert kept.to_json() == {"t": 1, "ack": T0.isoformat(), "close": (T0 + timedelta(days=1)).isoformat()}
    assert Notified.from_json(None) is None


def test_repeat_intervals_are_per_rule_then_per_level_then_the_default(tmp_path):
    import pytest

    from streams.notify.routing import load_repeats

    table = tmp_path / "routing.yaml"
    table.write_text("""
red: {centres: [community, street, district, city], ack_within: 15m, close_within: 12h, repeat_interval: 5m}
rules:
  broadcast_coverage_gap: {repeat_interval: 2h}
""", encoding="utf-8")
    repeats = load_repeats(table, REPEAT)
    yellow, red = signal_at(RiskLevel.yellow), signal_at(RiskLevel.red)
    assert repeats.of(yellow) == REPEAT and repeats.of(red) == timedelta(minutes=5)
    assert repeats.of(red.model_copy(update={"rule_id": "broadcast_coverage_gap"})) == timedelta(hours=2)
    last = Notified(int(T0.timestamp() * 1000), T0 + timedelta(minutes=15), T0 + timedelta(hours=12))
    assert plan(red, False, last, T0 + timedelta(minutes=6), DEFAULT_POLICY, repeats).notices  # red: after 5 min
    assert not plan(yellow, False, last, T0 + timedelta(minutes=6), DEFAULT_POLICY, repeats).notices
    table.write_text("rules: {x: {repeat_interval: soon}}", encoding="utf-8")
    with pytest.raises(ValueError, match="routing.yaml: duration 'soon'"):
        load_repeats(table, REPEAT)
    assert load_repeats(None, REPEAT).of(red) == REPEAT
