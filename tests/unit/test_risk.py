"""Entity risk: contributions add up with an explanation, decay, are capped per rule, and upgrade."""

from datetime import timedelta

from schemas.contracts.levels import RiskLevel
from streams.detection import risk
from streams.detection.cases import make_event
from streams.detection.correlator import Correlator, DictStates
from streams.detection.ruleset import load_rules

PACK = load_rules()
C = "210202001004"


def run(specs):
    correlator, states = Correlator(PACK), DictStates()
    out = []
    for n, spec in enumerate(specs):
        e = make_event(n, spec)
        out += [o.signal for o in correlator.process(e, 0, states, e.occurred_at)]
    return [s for s in out if s.rule_id == risk.RULE_ID]


def disputes(at_hours: int, community: str = C) -> list[dict]:
    return [{"at": f"{at_hours + i}h", "category": "dispute.neighbour", "region": community} for i in range(3)]


def departments(at_hours: int) -> list[dict]:
    return [{"at": f"{at_hours + i}h", "source": "dept_alert", "publisher": p, "category": c, "region": C}
            for i, (p, c) in enumerate([("police", "police.fight"), ("petition", "petition.visit"),
                                        ("fire", "fire.fire_incident")])]


def test_contributions_add_up_and_explain_themselves():
    blue, signal = run(disputes(0) + departments(0))  # both raised at 2h: 20 + 20, no decay between
    assert blue.level is RiskLevel.blue and blue.signal_id == signal.signal_id  # 20, upgraded not re-raised
    assert signal.entity == f"community:{C}" and signal.level is RiskLevel.yellow  # 20 + 20
    assert "矛盾纠纷聚集(20)" in signal.summary and "多部门同时关注(20)" in signal.summary
    assert signal.rule_chain == ["dispute_cluster", "multi_department_concern", "entity_risk"]
    assert {e.category for e in signal.evidence} == {"signal.dispute_cluster", "signal.multi_department_concern"}


def test_one_rule_alone_is_capped():
    specs = disputes(0) + disputes(30) + disputes(60) + disputes(90)  # four incidents, 4 x 20
    levels = [s.level for s in run(specs)]
    assert levels == [RiskLevel.blue, RiskLevel.yellow]  # capped at 40: never orange from one rule


def test_scores_decay_with_time():
    later = 8 * 24  # hours: beyond one half-life of 7 days
    assert [s.level for s in run(disputes(0) + departments(later))] == [RiskLevel.blue]


def test_a_rising_level_upgrades_the_same_signal():
    person = ["p-z"]
    specs = disputes(0) + departments(0) + [
        {"at": "10h", "category": "dispute.family", "region": C, "subjects": person},
        {"at": "11h", "category": "dispute.family", "region": C, "subjects": person},
        {"at": "12h", "source": "dept_alert", "category": "police.domestic_violence", "region": C,
         "subjects": person},
    ]
    community = [s for s in run(specs) if s.entity == f"community:{C}"]
    # 20 (dispute cluster), 40 (+ departments), 80 (+ the person's 民转刑 risk, 40)
    assert [s.level for s in community] == [RiskLevel.blue, RiskLevel.yellow, RiskLevel.orange]
    assert len({s.signal_id for s in community}) == 1 and [s.version for s in community] == [1, 2, 3]
    [person] = [s for s in run(specs) if s.entity.startswith("person:")]
    assert person.entity == "person:210202|p-z" and person.level is RiskLevel.yellow


def test_the_id_does_not_depend_on_which_rule_arrived_first():
    """Rules fed by different topics raise their signals in no fixed order; a replay must give
    the same entity_risk ids and levels."""
    for later in (0, 3):  # hours after the disputes: no decay between, or a little
        one, other = run(disputes(0) + departments(later)), run(departments(later) + disputes(0))
        assert one[-1].signal_id == other[-1].signal_id and one[-1].level is other[-1].level
    assert [s.level for s in one] == [s.level for s in other] == [RiskLevel.blue]  # 20 + 19.8


def test_a_risk_that_ends_and_reopens_the_same_day_continues_its_signal():
    doc = None
    for at_ms, score in ((0, 20.0), (3_600_000, 0.0), (7_200_000, 20.0)):
        signal = run(disputes(0))[0].model_copy(update={"signal_id": f"s{at_ms}"})
        doc, _, _, after = risk.add(doc, signal, score, at_ms, risk.RiskPolicy(per_source_cap=20))
    assert after is RiskLevel.blue and doc["version"] == 2  # not version 1 again under the same id


def test_policy_levels():
    p = risk.RiskPolicy()
    assert [p.level(x) for x in (10, 20, 40, 70, 100)] == [None, RiskLevel.blue, RiskLevel.yellow,
                                                           RiskLevel.orange, RiskLevel.red]
    assert p.half_life == timedelta(days=7)
