"""The dispatch state machine and its supervision deadlines, as pure logic."""

from datetime import timedelta

import pytest

from schemas.contracts.actions import ActionKind as K
from schemas.contracts.levels import RiskLevel
from streams.dispatch.case import Case, CaseState, centres_above
from tests.helpers import COMMUNITY, T0

H = timedelta(hours=1)


def red_case() -> Case:
    return Case(signal_id="sig-1", region_code=COMMUNITY, handler=COMMUNITY, level=RiskLevel.red, rule_id="r",
                summary="s", ack_within=timedelta(minutes=15), close_within=12 * H,
                ack_due=T0 + timedelta(minutes=15), close_due=T0 + 12 * H)


def test_the_centres_above_a_community():
    assert centres_above(COMMUNITY) == ["210202001", "210202", "2102"]
    assert centres_above("2102") == []


def test_a_case_goes_through_its_states_and_refuses_what_its_state_does_not_allow():
    case = red_case()
    assert case.refuse(K.close, COMMUNITY).status == 409
    assert case.refuse(K.assign, COMMUNITY).reason == "案件待签收，不能分办：请先签收"
    case.apply("a1", K.acknowledge, [], T0)
    assert case.refuse(K.acknowledge, COMMUNITY).reason == "案件已签收，无需再签收"
    assert case.refuse(K.coordinate, COMMUNITY).status == 409  # 协同 needs 分办 first
    case.apply("a2", K.assign, ["police"], T0)
    case.apply("a3", K.coordinate, ["civil_affairs", "police"], T0)
    assert case.departments == ["police", "civil_affairs"] and case.state is CaseState.assigned
    case.apply("a4", K.close, [], T0 + H)
    assert case.refuse(K.feedback, COMMUNITY).status == 409
    case.apply("a5", K.reopen, [], T0 + 2 * H)
    assert case.state is CaseState.open and case.round == 1 and case.close_due == T0 + 14 * H


@pytest.mark.parametrize("centre, allowed", [("2102", True), ("210202", True), ("210202001", True),
                                             (COMMUNITY, True), ("210203", False), ("210202001002", False)])
def test_only_centres_whose_jurisdiction_holds_the_region_may_act(centre, allowed):
    refusal = red_case().refuse(K.acknowledge, centre)
    assert (refusal is None) == allowed
    if not allowed:
        assert refusal.status == 403 and refusal.reason == f"{COMMUNITY}不在{centre}综治中心辖区内，不能签收"


def test_a_missed_deadline_climbs_one_centre_per_period_until_handled():
    case = red_case()
    assert case.due_supervisions(T0 + timedelta(minutes=14)) == []
    first = case.due_supervisions(T0 + timedelta(minutes=15))
    assert [(s.deadline, s.centre) for s in first] == [("ack", "210202001")]
    case.supervised.add(first[0].key)
    assert case.due_supervisions(T0 + timedelta(minutes=16)) == []
    assert [s.centre for s in case.due_supervisions(T0 + timedelta(minutes=45))] == ["210202", "2102"]
    case.apply("a1", K.acknowledge, [], T0 + timedelta(minutes=50))
    assert case.due_supervisions(T0 + 11 * H) == []
    assert [(s.deadline, s.centre) for s in case.due_supervisions(T0 + 12 * H)] == [("close", "210202001")]
    case.apply("a2", K.close, [], T0 + 13 * H)
    assert case.due_supervisions(T0 + 100 * H) == []


def test_a_centre_above_the_handler_supervises_by_hand_and_the_handler_hands_up():
    case = red_case()
    assert case.refuse(K.oversee, COMMUNITY).status == 403  # not over itself
    assert case.refuse(K.oversee, "210203").status == 403  # another district
    assert case.refuse(K.oversee, "210202") is None
    case.apply("a1", K.oversee, [], T0, "210202", "li.ming")
    assert case.overseers() == ["210202"]
    assert case.refuse(K.oversee, "210202").reason == "210202已挂牌督办此案件"
    assert case.refuse(K.escalate, "210202001").reason == f"只有承办中心{COMMUNITY}可以提级"
    case.apply("a2", K.acknowledge, [], T0, COMMUNITY, "wang.fang")
    case.apply("a3", K.escalate, [], T0 + H, COMMUNITY, "wang.fang", "需街道协调多部门")
    assert case.handler == "210202001" and case.state is CaseState.open
    assert case.ack_due == T0 + H + timedelta(minutes=15)
    # the street's own deadlines are supervised afresh, from the district up
    assert [s.centre for s in case.due_supervisions(T0 + H + timedelta(minutes=15))] == ["210202"]
    assert [(h["kind"], h["actor"]) for h in case.history] == [
        ("oversee", "li.ming"), ("acknowledge", "wang.fang"), ("escalate", "wang.fang")]
    city = Case(**{**red_case().__dict__, "handler": "2102", "history": []})
    assert city.refuse(K.escalate, "2102").status == 409  # nothing above the city
    case.apply("a4", K.acknowledge, [], T0 + H, "210202001", "zhao.lei")
    case.apply("a5", K.close, [], T0 + 2 * H, "210202001", "zhao.lei")
    assert case.refuse(K.oversee, "210202").reason == "案件已办结，不能挂牌督办：请先重新办理"


def test_a_case_reads_back_as_the_desk_kept_it():
    case = red_case()
    case.apply("a1", K.acknowledge, [], T0)
    case.apply("a2", K.assign, ["police", "civil_affairs"], T0 + H)
    case.supervised.add("close:0:210202001")
    case.apply("a3", K.feedback, [], T0 + H, COMMUNITY, "wang.fang", "已上门调解")
    again = Case.from_json(case.to_json())
    assert again == case
    assert again.state is CaseState.assigned and again.ack_within == timedelta(minutes=15)


def test_a_case_answered_late_closes_itself_once_and_not_when_it_holds_another_signal():
    """迟到回应: the desk's own 办结, once: a case a centre reopens after it stays open. A case
    other signals of the incident joined (并案) is left to its centre."""
    case = red_case()
    assert not case.closes_itself()
    case.answered_at = T0
    assert case.closes_itself()
    for _ in (1, 2):  # applied as sent, and again as read back from the topic: once
        case.apply(case.answered_close, K.close, [], T0 + H, COMMUNITY, "fengqiao", "迟到回应")
    assert case.state is CaseState.closed and not case.closes_itself() and len(case.history) == 1
    case.apply("a1", K.reopen, [], T0 + 2 * H, COMMUNITY, "wang.fang")
    assert case.state is CaseState.open and not case.closes_itself()
    assert Case.from_json(case.to_json()) == case
    joined = red_case()
    joined.answered_at, joined.joined = T0, ["sig-2"]
    assert not joined.closes_itself()
