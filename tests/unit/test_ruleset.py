import pytest

from schemas.contracts.levels import RiskLevel
from streams.detection.cases import make_event, run_all, run_case
from streams.detection.ruleset import ExpectedSignal, RuleError, load_rule, load_rules, parse_duration

PACK = load_rules()
BY_ID = {r.id: r for r in PACK}


def test_the_bundled_pack_loads_with_every_type():
    assert {r.type for r in PACK} == {"event_count", "value_count", "temporal", "temporal_ordered", "absence",
                                    "register"}
    assert {"dispute_escalation", "regular_contact", "patrol_gap", "group_petition", "fire_gas_hazard", "welfare_under_weather_warning",
            "broadcast_coverage_gap", "hazard_reported_again", "psychological_crisis"} <= set(BY_ID)
    rule = BY_ID["dispute_cluster"]
    assert rule.threshold == 3 and rule.level is RiskLevel.yellow and rule.window == parse_duration("24h")
    assert all("art." in r.basis for r in PACK)


@pytest.mark.parametrize("result", run_all(PACK), ids=lambda r: f"{r.rule}: {r.case}")
def test_rule_case(result):
    assert result.passed, (result.expected, result.got)


def test_every_rule_has_a_firing_case_and_a_near_miss():
    for rule in PACK:
        assert any(case.expect for case in rule.tests), rule.id
        assert any(not case.expect for case in rule.tests), rule.id


def test_a_rule_skipped_for_a_source_and_category_never_takes_its_events():
    """The correlator asks each rule only about the (source, category) pairs it admits: that must
    lose nothing, and it must spare most of the asking."""
    events = [make_event(n, spec) for rule in PACK for case in rule.tests for n, spec in enumerate(case.events)]
    skipped = 0
    for rule in PACK:
        for event in events:
            if not rule.admits(event.source, event.category):
                skipped += 1
                assert rule.tag(event) is None, (rule.id, event)
    assert skipped > len(events) * (len(PACK) - 4)  # of sixteen rules, an event concerns a few


def test_a_wrong_expectation_fails():
    rule = BY_ID["dispute_cluster"]
    case = rule.tests[0].model_copy(update={"expect": [ExpectedSignal(level="red", entity="210202001004")]})
    assert not run_case(PACK, rule, case)[0].passed


def test_chained_signals_are_evidence_with_uplift():
    rule = BY_ID["compound_community_risk"]
    _, signals = run_case(PACK, rule, rule.tests[0])
    [compound] = [s for s in signals if s.rule_id == rule.id]
    assert compound.level is RiskLevel.orange  # yellow inputs raised one step
    assert compound.rule_chain == ["dispute_cluster", "multi_department_concern", "compound_community_risk"]
    assert {e.source.value for e in compound.evidence} == {"signal"}


def test_sensitive_rules_keep_minimal_detail():
    rule = BY_ID["psychological_crisis"]
    _, [signal] = run_case(PACK, rule, rule.tests[0])
    assert rule.sensitive and len(signal.evidence) == 1 and signal.level is RiskLevel.blue


def test_replay_gives_the_same_signals_and_ids():
    for rule in PACK:
        for case in rule.tests:
            first = sorted(s.signal_id for s in run_case(PACK, rule, case)[1])
            assert first == sorted(s.signal_id for s in run_case(PACK, rule, case)[1])


GOOD = """id: x
name: n
basis: Dalian art. 12
type: event_count
filter: {source: grid_report}
group_by: {field: region_code, level: community}
window: 1h
threshold: 2
level: blue
summary: s
"""


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (GOOD.replace("filter: {source: grid_report}", "filter: {colour: red}"), 5, "unknown field 'colour'"),
        (GOOD.replace("window: 1h", "window: soon"), 7, "window"),
        (GOOD.replace("level: blue", "level: purple"), 9, "level"),
        (GOOD.replace("type: event_count", "type: magic"), 4, "type"),
        (GOOD.replace("threshold: 2\n", ""), 1, "threshold"),
        ("id: [unclosed", 1, "not valid YAML"),
    ],
)
def test_a_wrong_rule_names_the_file_the_line_and_the_reason(tmp_path, text, line, needle):
    (tmp_path / "bad_rule.yaml").write_text(text)
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path)
    assert str(err.value).startswith(f"bad_rule.yaml:{line}:") and needle in str(err.value)


def test_absence_rules_must_be_placed(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "id: a\nname: n\nbasis: b\ntype: absence\ngroup_by: {field: subjects}\nwindow: 1d\nwithin: 2d\n"
        "trigger: {category: x}\nexpected: {category: y}\nlevel: blue\nsummary: s\n")
    with pytest.raises(RuleError, match="groups by region_code"):
        load_rules(tmp_path)


CITY_WAVE = """
id: city_dispute_wave
name: 全市纠纷高发
basis: Dalian art. 12 (test pack)
type: event_count
filter: {category: {prefix: "dispute."}}
group_by: {field: region_code, level: city}
window: 24h
threshold: 3
level: yellow
summary: "{place}：{count}起纠纷"
"""
TAKES_THE_WAVE = """
id: wave_in_a_community
name: 社区与全市纠纷
basis: Dalian art. 12 (test pack)
type: temporal
group_by: {field: region_code, level: community}
window: 24h
conditions:
  wave: {where: {source: signal, category: signal.city_dispute_wave}}
  local: {where: {category: {prefix: "dispute."}}}
level: orange
summary: "{place}"
"""


def test_a_city_wide_rule_groups_by_the_city_and_a_person_stays_in_its_county(tmp_path):
    from tests.unit.test_correlation import event

    (tmp_path / "wave.yaml").write_text(CITY_WAVE)
    (wave,) = load_rules(tmp_path)
    assert wave.regional and not wave.within_county
    assert wave.groups(event(1, community="210203001001")) == ["2102"]
    person = next(r for r in load_rules() if r.id == "dispute_escalation")
    assert not person.regional
    groups = person.groups(event(1))
    assert groups and all(g.startswith("210202|") for g in groups)


def test_a_rule_cannot_chain_across_the_repartition(tmp_path):
    (tmp_path / "wave.yaml").write_text(CITY_WAVE)
    (tmp_path / "takes.yaml").write_text(TAKES_THE_WAVE)
    with pytest.raises(RuleError, match="wave_in_a_community: a county-level rule cannot take city_dispute_wave"):
        load_rules(tmp_path)


REGISTER = """
id: r
name: 名册
basis: Dalian art. 35
type: register
group_by: [{field: region_code, level: community}, {field: subjects}]
window: 30d
registers: {attributes.register: registered}
expected: {category: care.elderly_alone}
level: blue
summary: x
"""


@pytest.mark.parametrize("extra, message", [
    ("", "give either every"),
    ("every: 7d\ntrigger: {category: weather.cold_wave}\nwithin: 48h", "give either every"),
    ("trigger: {category: weather.cold_wave}", "a trigger needs within"),
    ("every: 60d", "window must be at least the longest interval"),
    ("every: {field: attributes.population}", "give a duration, or a field and a duration for each"),
])
def test_a_register_rule_says_when_a_member_is_owed_a_contact(tmp_path, extra, message):
    path = tmp_path / "r.yaml"
    path.write_text(REGISTER + extra, encoding="utf-8")
    with pytest.raises(RuleError, match=message):
        load_rule(path)


def test_a_member_registered_as_two_kinds_is_owed_the_shorter_interval_and_stays_until_both_end():
    from streams.detection.windows import WindowState, members, observe, to_ms

    rule = BY_ID["regular_contact"]
    state, t = WindowState(), []

    def enter(n: int, at: str, register: str, population: str) -> None:
        nonlocal state
        event = make_event(n, {"at": at, "source": "dept_alert", "category": f"civil_affairs.population_{register}",
                               "region": "210202001004", "subjects": ["p-wang"],
                               "attributes": {"register": register, "population": population}})
        state = observe(rule, state, event, "210202001004|p-wang", rule.tag(event), event.occurred_at).state
        t.append(to_ms(event.occurred_at))

    enter(0, "0h", "registered", "subsistence_allowance")
    assert [p.deadline_ms - t[0] for p in state.pending] == [90 * 86_400_000]
    enter(1, "1h", "registered", "elderly_alone")
    assert [p.deadline_ms - t[0] for p in state.pending] == [7 * 86_400_000]  # from the first registration
    enter(2, "2h", "deregistered", "elderly_alone")
    assert set(members(state.entries)) == {"subsistence_allowance"}
    assert [p.deadline_ms - t[0] for p in state.pending] == [90 * 86_400_000]
    enter(3, "3h", "deregistered", "subsistence_allowance")
    assert members(state.entries) == {} and state.pending == []


def test_a_visit_under_a_pseudonym_later_linked_to_the_registered_person_answers_for_her():
    """The grid worker wrote the elder's name and mobile before civil affairs' registration linked
    them to her ID number: when the two pseudonyms are found to be one person, the visit counts."""
    from streams.detection.windows import WindowState, merge, observe

    rule = BY_ID["welfare_under_weather_warning"]
    registered, visited = WindowState(), WindowState()
    specs = [({"at": "0h", "source": "dept_alert", "category": "civil_affairs.population_registered",
               "subjects": ["p-id"], "attributes": {"register": "registered", "population": "elderly_alone"}}, "p-id"),
             ({"at": "10h", "source": "dept_alert", "category": "weather.cold_wave",
               "attributes": {"hazard": "cold_wave"}}, "p-id"),
             ({"at": "20h", "category": "care.elderly_alone", "subjects": ["p-name"]}, "p-name")]
    for n, (spec, who) in enumerate(specs):
        event = make_event(n, {**spec, "region": "210202001004"})
        group = f"210202001004|{who}"
        if who == "p-id":
            registered = observe(rule, registered, event, group, rule.tag(event), event.occurred_at).state
        else:
            visited = observe(rule, visited, event, group, rule.tag(event), event.occurred_at).state
    assert len(registered.pending) == 1 and visited.pending == []  # owed a visit; the visit was someone else's
    joined = merge(rule, registered, visited, "210202001004|p-name", "210202001004|p-id", "210202001004",
                   make_event(9, {"category": "care.elderly_alone", "region": "210202001004"}).occurred_at).state
    assert joined.pending == []  # one person: her visit answers the warning


def test_every_published_category_is_read_by_a_rule_of_its_own_or_named_informational_with_why():
    """The issue's unread department categories: each belongs to a rule or is informational on
    purpose (evacuation, epidemics, the weather no welfare rule takes), with a reason."""
    from schemas.contracts.events import Source
    from streams.detection.ruleset import Informational, load_informational, published_categories, unread

    informational, categories = load_informational(), published_categories()
    assert unread(PACK, informational, categories) == []
    named = informational.of(Source.dept_alert)
    assert {"emergency.evacuation", "health.epidemic", "weather.typhoon"} <= set(named) and all(named.values())
    assert "weather.cold_wave" not in named  # welfare_under_weather_warning reads it
    dropped = Informational(dept_alert={k: v for k, v in named.items() if k != "health.epidemic"},
                            grid_report={**informational.grid_report, "dispute.neighbour": "stale", "no.such": "x"})
    assert unread(PACK, dropped, categories) == [
        "dept_alert health.epidemic: read by no rule of its own and not named in informational.yaml",
        "grid_report dispute.neighbour: named in informational.yaml but read by dispute_cluster, dispute_escalation, "
        "urgent_grid_report",
        "grid_report no.such: named in informational.yaml but not a category of grid_report"]
