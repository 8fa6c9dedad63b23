"""Silences (静默) as pure logic: what one matches, what a centre may make, what is in force."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from schemas.contracts.levels import RiskLevel
from schemas.contracts.silences import Silence, SilenceRequest
from streams.api.silences import expire, in_force, make_silence
from streams.notify.silences import matches, silenced_by
from tests.helpers import COMMUNITY, T0
from tests.unit.test_routing import signal_at

H = timedelta(hours=1)


def made(**asked) -> Silence:
    silence = make_silence(SilenceRequest(ends_at=T0 + 2 * H, reason="检修", **asked), COMMUNITY[:6], "key:k1", T0)
    assert isinstance(silence, Silence)
    return silence


def test_a_silence_matches_by_every_matcher_it_gives():
    signal = signal_at(RiskLevel.yellow)  # dispute_cluster in COMMUNITY
    assert matches(made(rule_id="dispute_cluster"), signal)
    assert not matches(made(rule_id="fire_gas_hazard"), signal)
    assert matches(made(rule_id="dispute_cluster", region=COMMUNITY), signal)
    assert not matches(made(rule_id="dispute_cluster", region="210202005"), signal)
    assert matches(made(entity=signal.entity), signal) and not matches(made(entity="210202001004|5栋"), signal)
    assert matches(made(publisher=signal.evidence[0].uid.split(":")[0]), signal)
    assert not matches(made(publisher="dalian-ebs"), signal)


def test_a_device_or_a_publisher_matches_only_a_signal_resting_on_its_events_alone():
    """A smoke alarm under repair (设备检修) is silenced; the same signal with a police report
    beside the alarm is not: a person's report still pages."""
    from schemas.contracts.events import Source
    from schemas.contracts.signals import Evidence

    alarm = Evidence(uid="fire-iot:a1", source=Source.dept_alert, category="fire.smoke_alarm", occurred_at=T0,
                     device="YG-0042")
    police = Evidence(uid="police:p1", source=Source.dept_alert, category="police.gathering", occurred_at=T0)
    only_alarms = signal_at(RiskLevel.red).model_copy(update={"evidence": [alarm, alarm]})
    assert matches(made(device="YG-0042"), only_alarms) and matches(made(publisher="fire-iot"), only_alarms)
    assert not matches(made(device="YG-0043"), only_alarms)
    mixed = only_alarms.model_copy(update={"evidence": [alarm, police]})
    assert not matches(made(device="YG-0042"), mixed) and not matches(made(publisher="fire-iot"), mixed)
    chained = only_alarms.model_copy(update={"evidence": [Evidence(uid="signal:sig-1", source=Source.signal,
                                                                   category="signal.x", occurred_at=T0)]})
    assert not matches(made(device="YG-0042"), chained)


def test_only_a_silence_in_force_holds_a_signal_back_and_never_a_drill():
    signal, silence = signal_at(RiskLevel.yellow), made(rule_id="dispute_cluster")
    assert silenced_by([silence], signal, T0 + H) == [silence.silence_id]
    assert silenced_by([silence], signal, T0 + 3 * H) == []  # ended
    assert silenced_by([expire(silence, "wang.fang", T0 + H)], signal, T0 + H) == []
    assert silenced_by([silence], signal.model_copy(update={"drill": True}), T0 + H) == []


def test_a_centre_silences_only_its_own_jurisdiction_for_at_most_thirty_days():
    asked = SilenceRequest(rule_id="dispute_cluster", region="210203", ends_at=T0 + H, reason="x")
    assert make_silence(asked, "210202", "key:k1", T0)[0] == 403
    late = SilenceRequest(rule_id="dispute_cluster", ends_at=T0 - H, reason="x")
    assert make_silence(late, "210202", "key:k1", T0)[:2] == (422, "ends_at")
    long = SilenceRequest(rule_id="dispute_cluster", ends_at=T0 + timedelta(days=31), reason="x")
    assert make_silence(long, "210202", "key:k1", T0)[:2] == (422, "ends_at")
    silence = made(rule_id="dispute_cluster")
    assert (silence.region_code, silence.created_by, silence.starts_at) == ("210202", "key:k1", T0)


@pytest.mark.parametrize("asked", [
    {"region": "210202", "ends_at": T0 + H, "reason": "x"},  # a whole place, nothing named
    {"rule_id": "dispute_cluster", "ends_at": T0 + H, "reason": ""},
    {"rule_id": "dispute_cluster", "starts_at": T0 + H, "ends_at": T0, "reason": "x"},
    {"rule_id": "Dispute", "ends_at": T0 + H, "reason": "x"},
])
def test_a_request_names_what_how_long_and_why(asked):
    with pytest.raises(ValidationError):
        SilenceRequest.model_validate(asked)


def test_in_force_lists_a_jurisdiction_s_silences_not_ended():
    a, b = made(rule_id="dispute_cluster"), made(rule_id="fire_gas_hazard", region=COMMUNITY)
    gone = expire(made(rule_id="petition_cluster"), "wang.fang", T0)
    assert {s.silence_id for s in in_force([a, b, gone], "210202", T0)} == {a.silence_id, b.silence_id}
    assert [s.silence_id for s in in_force([a, b], COMMUNITY, T0)] == [b.silence_id]
    assert in_force([a], "210202", T0 + 3 * H) == []
