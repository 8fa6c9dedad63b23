"""The admitted matter catalogue of a deployment: effective dates at intake, the negative list at
the desk."""

import json
from datetime import date, timedelta

import pytest

from schemas.contracts.actions import ActionKind as K
from schemas.contracts.actions import DispatchAction
from schemas.contracts.levels import RiskLevel
from schemas.reference.matters import CatalogueError, bundled_text, catalogue, read_catalogue, use_catalogue
from streams.dispatch.case import Case
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import Accepted, DeadLetter, Origin, Validator
from tests.helpers import COMMUNITY, T0, grid_report

V = Validator(Pseudonymiser(b"test-key"))
DEPLOYMENT = bundled_text().replace("      dispute.medical: 医患纠纷\n", """      dispute.medical: 医患纠纷
      dispute.rent: {name: 租赁纠纷, from: 2027-01-01}
      dispute.old_form: {name: 旧表单纠纷, until: 2026-11-01}
""")


@pytest.fixture
def deployment(tmp_path):
    path = tmp_path / "matters.yaml"
    path.write_text(DEPLOYMENT, encoding="utf-8")
    use_catalogue(path)
    yield catalogue()
    use_catalogue(None)


def check(category: str, when) -> Accepted | DeadLetter:
    raw = json.dumps(grid_report(1, category=category, at=when), ensure_ascii=False).encode()
    return V.grid_report(raw, Origin("grid-reports", 0, 0), T0)


def test_a_matter_is_admitted_only_from_and_until_its_dates(deployment):
    assert isinstance(check("dispute.rent", T0.replace(year=2027, month=1, day=1)), Accepted)
    early = check("dispute.rent", T0)  # 2026-11-20, before it is admitted
    assert isinstance(early, DeadLetter) and early.reason == "not_in_catalogue" and early.field == "category"
    assert "admitted from 2027-01-01" in early.message
    assert isinstance(check("dispute.old_form", T0 - timedelta(days=30)), Accepted)
    assert isinstance(check("dispute.old_form", T0), DeadLetter)  # until 2026-11-01: no longer


def test_the_bundled_catalogue_is_back_when_the_deployment_s_is_unset(deployment):
    use_catalogue(None)
    assert "dispute.rent" not in catalogue() and catalogue().source == "bundled"


@pytest.mark.parametrize("text, message", [
    ("groups: {d: {name: x, matters: {a.b: {name: y, from: 2027-01-01, until: 2026-01-01}}}}", "is not after"),
    ("groups: {d: {name: x, matters: {a.b: y}}}\nnegative_list: {c.d: 不行}", "names matters the catalogue does not"),
    ("groups: {d: {name: x, matters: {a.b: {from: 2027-01-01}}}}", "no name"),
    ("groups: {d: {name: x, matters: {a.b: {name: y, from: 2027-13-01}}}}", "cannot be read: month"),
    ("groups: {d: {name: x, matters: {a.b: {name: y, from: 1 May}}}}", "is not a date"),
    ("version: 1", "no groups"),
])
def test_a_wrong_catalogue_is_refused_saying_why(text, message):
    with pytest.raises(CatalogueError, match=message):
        read_catalogue(text, "deploy.yaml")


def case_of(*matters: str) -> Case:
    return Case(signal_id="sig-1", region_code=COMMUNITY, handler=COMMUNITY, level=RiskLevel.blue, rule_id="r",
                summary="s", ack_within=timedelta(hours=24), close_within=timedelta(days=7),
                ack_due=T0, close_due=T0, matters=list(matters))


def test_the_negative_list_refuses_a_case_to_the_grids_and_nothing_else():
    case = case_of("dispute.neighbour", "dispute.demolition")
    case.apply("a1", K.acknowledge, [], T0, COMMUNITY)
    refusal = case.refuse(K.assign, COMMUNITY, to_grid=True)
    assert refusal is not None and refusal.status == 409
    assert "「征地拆迁纠纷」在负面清单上" in refusal.reason and "辽源条例第二十八条" in refusal.reason
    assert case.refuse(K.assign, COMMUNITY) is None  # to a department: as ever
    neighbours = case_of("dispute.neighbour")
    neighbours.apply("a1", K.acknowledge, [], T0, COMMUNITY)
    assert neighbours.refuse(K.assign, COMMUNITY, to_grid=True) is None
    neighbours.apply("a2", K.assign, [], T0, COMMUNITY, to_grid=True)
    assert neighbours.to_grid and neighbours.history[-1]["to_grid"] is True
    assert Case.from_json(neighbours.to_json()) == neighbours


@pytest.mark.parametrize("body, ok", [
    ({"kind": "assign", "to_grid": True}, True),
    ({"kind": "assign", "departments": ["police"]}, True),
    ({"kind": "assign"}, False),
    ({"kind": "coordinate", "to_grid": True}, False),
    ({"kind": "feedback", "to_grid": True}, False),
    ({"kind": "assign", "to_grid": "yes"}, False),
])
def test_an_assignment_goes_to_a_department_or_to_the_grids(body, ok):
    doc = {"action_id": "a1", "signal_id": "sig-1", "centre_code": COMMUNITY, "actor": "wang.fang",
           "occurred_at": T0.isoformat(), **body}
    try:
        DispatchAction.model_validate(doc)
    except ValueError:
        assert not ok
    else:
        assert ok


def test_the_bundled_negative_list_names_matters_of_the_catalogue():
    assert set(catalogue().negative) <= set(catalogue().matters) and catalogue().negative
    assert date.today() and all(m.admitted_on(date(2026, 12, 5)) for m in catalogue().matters.values())
