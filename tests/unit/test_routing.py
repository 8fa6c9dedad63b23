from datetime import timedelta

import pytest

from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import NoticeRole
from schemas.reference.regions import Level
from streams.notify.routing import route
from tests.helpers import T0
from tests.unit.test_correlation import event, run


def signal_at(level: RiskLevel):
    return run([event(1), event(2), event(3)])[0].signal.model_copy(update={"level": level})


@pytest.mark.parametrize(
    ("level", "centres", "ack"),
    [
        (RiskLevel.blue, ["210202001004"], timedelta(hours=24)),
        (RiskLevel.yellow, ["210202001004", "210202001"], timedelta(hours=2)),
        (RiskLevel.orange, ["210202001004", "210202001", "210202"], timedelta(minutes=30)),
        (RiskLevel.red, ["210202001004", "210202001", "210202", "2102"], timedelta(minutes=15)),
    ],
)
def test_policy_table(level, centres, ack):
    notices = route(signal_at(level), T0)
    assert [n.centre_code for n in notices] == centres
    assert [n.role for n in notices] == [NoticeRole.handle] + [NoticeRole.inform] * (len(centres) - 1)
    assert notices[0].centre_level is Level.community
    assert all(n.ack_due == T0 + ack for n in notices)
    assert len({n.notice_id for n in notices}) == len(notices)


@pytest.mark.parametrize(("region", "level", "centres"), [
    ("210200000000", RiskLevel.yellow, ["2102"]),  # city-wide: the city handles, whatever the level
    ("210200000000", RiskLevel.red, ["2102"]),
    ("210202000000", RiskLevel.blue, ["210202"]),  # district-wide
    ("210202000000", RiskLevel.red, ["210202", "2102"]),
])
def test_a_signal_about_a_wider_region_goes_to_the_centres_that_hold_it(region, level, centres):
    notices = route(signal_at(level).model_copy(update={"region_code": region}), T0)
    assert [n.centre_code for n in notices] == centres
    assert notices[0].role is NoticeRole.handle


@pytest.mark.parametrize("level", list(RiskLevel))
def test_a_province_wide_signal_reaches_every_city_centre_of_the_province(level):
    notices = route(signal_at(level).model_copy(update={"region_code": "210000000000"}), T0)
    assert [n.centre_code for n in notices] == ["2101", "2102"]  # Shenyang, Dalian: not Liaoyuan (Jilin)
    assert {n.centre_level for n in notices} == {Level.city}
    assert {n.role for n in notices} == {NoticeRole.handle}  # each city handles its own part
    assert len({n.notice_id for n in notices}) == 2


def test_a_region_holding_no_known_centre_routes_to_none():
    assert route(signal_at(RiskLevel.red).model_copy(update={"region_code": "110000000000"}), T0) == []


def test_a_notice_says_what_a_centre_needs_to_act_and_links_the_case():
    s = signal_at(RiskLevel.yellow)
    (handle, inform) = route(s, T0, console="https://fengqiao.example.gov.cn/console/")
    assert handle.entity_level == "community" and handle.entity == "210202001004"
    assert handle.place == "大连市中山区海军广场街道春德社区居委会"
    assert handle.case_url == inform.case_url == f"https://fengqiao.example.gov.cn/console/cases/{s.signal_id}"
    assert route(s, T0)[0].case_url == ""  # no console address configured: no link rather than a wrong one


def test_notice_ids_are_stable():
    s = signal_at(RiskLevel.yellow)
    assert [n.notice_id for n in route(s, T0)] == [n.notice_id for n in route(s, T0 + timedelta(hours=1))]


def test_a_routing_file_replaces_the_table_and_a_wrong_one_is_refused(tmp_path):
    from streams.notify.routing import DEFAULT_POLICY, load_policy

    good = tmp_path / "routing.yaml"
    good.write_text("""
red:    {centres: [community, township, county, city], ack_within: 10m, close_within: 8h}
orange: {centres: [community, township, county], ack_within: 30m, close_within: 24h}
yellow: {centres: [community, township], ack_within: 2h, close_within: 72h}
blue:   {centres: [community], ack_within: 24h, close_within: 7d}
""")
    policy = load_policy(good)
    assert policy[RiskLevel.red].ack_within == timedelta(minutes=10)
    assert policy[RiskLevel.blue] == DEFAULT_POLICY[RiskLevel.blue]
    assert load_policy(None) is DEFAULT_POLICY
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("[community, township]", "[township, community]"))
    with pytest.raises(ValueError, match="yellow: centres must be the lowest levels in order"):
        load_policy(bad)
    bad.write_text(good.read_text().replace("blue:", "# blue:"))
    with pytest.raises(ValueError, match="blue: missing"):
        load_policy(bad)
