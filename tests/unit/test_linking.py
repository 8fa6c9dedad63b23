"""One person, one pseudonym (``streams.intake.linking``): identifiers named together are linked."""

from __future__ import annotations

from datetime import timedelta

from schemas.contracts.events import Identity, NormalisedEvent, Source
from schemas.contracts.levels import RiskLevel
from streams.detection import risk
from streams.detection.correlator import Correlator, DictStates
from streams.detection.ruleset import load_rules
from streams.detection.windows import to_ms
from streams.intake.identity import Pseudonymiser
from streams.intake.linking import DictLinks, Merge, links_format, resolve
from tests.helpers import COMMUNITY, T0, id_number

P = Pseudonymiser(b"k" * 32)
COUNTY = COMMUNITY[:6]
ZHANG_ID, ZHANG_MOBILE = id_number(1), "13812345678"
LI_ID, LI_MOBILE = id_number(2), "13987654321"


def person(name: str, id_no: str | None = None, phone: str | None = None, community: str = COMMUNITY) -> Identity:
    return P.identity(name, community, id_no, phone)


def at(hours: float) -> int:
    return to_ms(T0 + timedelta(hours=hours))


def test_a_person_first_met_is_known_by_their_strongest_identifier():
    links = DictLinks()
    assert resolve(links, COUNTY, [person("张伟", ZHANG_ID, ZHANG_MOBILE)], at(0)).people == [P.id_number(ZHANG_ID)]
    assert resolve(links, COUNTY, [person("李娜", phone=LI_MOBILE)], at(0)).people == [P.phone(LI_MOBILE)]
    assert resolve(links, COUNTY, [person("王芳")], at(0)).people == [P.name("王芳", COMMUNITY)]


def test_every_later_mention_by_any_identifier_resolves_to_the_one_person():
    links = DictLinks()
    (zhang,) = resolve(links, COUNTY, [person("张伟", ZHANG_ID, ZHANG_MOBILE)], at(0)).people
    assert resolve(links, COUNTY, [person("张伟", phone="138 1234 5678")], at(1)).people == [zhang]
    assert resolve(links, COUNTY, [person("张伟")], at(2)).people == [zhang]  # the name, linked with them
    assert resolve(links, COUNTY, [person("张 伟", ZHANG_ID.lower())], at(3)).people == [zhang]


def test_mobile_first_then_the_id_number_keeps_the_pseudonym_already_in_use():
    """Grid reports name someone by mobile; a police call later by ID number and mobile: the
    person keeps the pseudonym their windows are kept under, and the ID number joins it."""
    links = DictLinks()
    (first,) = resolve(links, COUNTY, [person("张伟", phone=ZHANG_MOBILE)], at(0)).people
    found = resolve(links, COUNTY, [person("张伟", ZHANG_ID, ZHANG_MOBILE)], at(5))
    assert found.people == [first] == [P.phone(ZHANG_MOBILE)] and found.merges == []
    assert resolve(links, COUNTY, [person("某人", ZHANG_ID)], at(6)).people == [first]
    assert {c.identifier for c in found.changes} == {P.id_number(ZHANG_ID)}


def test_two_people_known_apart_are_merged_into_the_one_met_first():
    links = DictLinks()
    (by_id,) = resolve(links, COUNTY, [person("张伟", ZHANG_ID)], at(0)).people
    (by_mobile,) = resolve(links, COUNTY, [person("小张", phone=ZHANG_MOBILE)], at(1)).people
    assert by_id != by_mobile
    found = resolve(links, COUNTY, [person("张伟", ZHANG_ID, ZHANG_MOBILE)], at(2))
    assert found.people == [by_id] and found.merges == [Merge(COUNTY, by_mobile, by_id)]
    assert resolve(links, COUNTY, [person("小张", phone=ZHANG_MOBILE)], at(3)).people == [by_id]
    assert resolve(links, COUNTY, [person("小张")], at(3)).people == [by_id]  # the merged person's name too


def test_two_id_numbers_are_never_one_person_and_their_shared_phone_names_neither():
    links = DictLinks()
    (husband,) = resolve(links, COUNTY, [person("张伟", ZHANG_ID, ZHANG_MOBILE)], at(0)).people
    found = resolve(links, COUNTY, [person("王芳", LI_ID, ZHANG_MOBILE)], at(1))
    assert found.people == [P.id_number(LI_ID)] and found.merges == []
    assert any(c.identifier == P.phone(ZHANG_MOBILE) and c.shared for c in found.changes)
    assert resolve(links, COUNTY, [person("某某", phone=ZHANG_MOBILE)], at(2)).people == [P.name("某某", COMMUNITY)]
    assert resolve(links, COUNTY, [person("张伟", ZHANG_ID)], at(3)).people == [husband]


def test_a_name_joins_a_person_known_only_by_it_but_never_two_people_with_numbers():
    links = DictLinks()
    (by_name,) = resolve(links, COUNTY, [person("赵桂兰")], at(0)).people
    found = resolve(links, COUNTY, [person("赵桂兰", phone=ZHANG_MOBILE)], at(1))
    assert found.people == [by_name] and found.merges == [Merge(COUNTY, P.phone(ZHANG_MOBILE), by_name)]
    # a second 赵桂兰 of the same community, with a number of her own: two people of one name
    other = resolve(links, COUNTY, [person("赵桂兰", phone=LI_MOBILE)], at(2))
    assert other.people == [P.phone(LI_MOBILE)] and other.merges == []
    assert resolve(links, COUNTY, [person("赵桂兰")], at(3)).people == [P.name("赵桂兰", COMMUNITY)]  # neither


def test_links_are_kept_per_county_and_names_per_community():
    links = DictLinks()
    (here,) = resolve(links, COUNTY, [person("张伟", ZHANG_ID, ZHANG_MOBILE)], at(0)).people
    elsewhere = resolve(links, "210203", [person("张伟", phone=ZHANG_MOBILE, community="210203001001")], at(1))
    assert elsewhere.people == [P.phone(ZHANG_MOBILE)] != [here]
    assert resolve(links, COUNTY, [person("张伟", community="210202001002")], at(1)).people != [here]


def test_the_same_events_in_the_same_order_give_the_same_links():
    events = [[person("张伟", phone=ZHANG_MOBILE)], [person("张伟", ZHANG_ID)], [person("李娜", LI_ID, LI_MOBILE)],
              [person("张伟", ZHANG_ID, ZHANG_MOBILE), person("李娜", phone=LI_MOBILE)], [person("张伟")]]

    def run() -> tuple[dict, list]:
        links = DictLinks()
        return links, [resolve(links, COUNTY, e, at(n)).people for n, e in enumerate(events)]

    assert run() == run()
    links, _ = run()
    assert all(links_format(doc) == 1 for doc in links.values())
    assert not any(ZHANG_MOBILE in str(doc) or ZHANG_ID in str(doc) or "张伟" in str(doc) for doc in links.values())


# -- the correlator: a person's windows merged ----------------------------------------------
ESCALATION = [r for r in load_rules() if r.id == "dispute_escalation"]


def event(n: int, hours: float, subjects: list[str], source: Source = Source.grid_report,
          category: str = "dispute.family") -> NormalisedEvent:
    return NormalisedEvent(event_id=f"e{n}", publisher="police" if source is Source.dept_alert else "grid",
                           source=source, category=category, region_code=COMMUNITY,
                           occurred_at=T0 + timedelta(hours=hours), ingested_at=T0, subjects=subjects)


def test_a_merge_joins_two_pseudonyms_windows_and_raises_what_one_person_did():
    """Two disputes about a mobile's pseudonym and a police call about an ID number's: merged,
    one person in repeated disputes and then a police call."""
    correlator, states = Correlator(ESCALATION), DictStates()
    by_mobile, by_id = P.phone(ZHANG_MOBILE), P.id_number(ZHANG_ID)
    for n, hours in ((1, 0), (2, 72)):
        assert correlator.process(event(n, hours, [by_mobile]), 0, states, T0) == []
    call = event(3, 100, [by_id], Source.dept_alert, "police.domestic_violence")
    assert correlator.process(call, 0, states, T0) == []
    outcomes = correlator.merge_people([Merge(COUNTY, by_id, by_mobile)], call, 0, states, T0)
    raised = [o.signal for o in outcomes if o.signal.rule_id == "dispute_escalation"]
    assert [s.entity for s in raised] == [f"{COUNTY}|{by_mobile}"] and raised[0].region_code == COMMUNITY
    assert not any(by_id in key for key in states)


def test_a_link_after_a_signal_updates_that_signal_rather_than_raising_a_second():
    correlator, states = Correlator(ESCALATION), DictStates()
    by_id, by_mobile = P.id_number(ZHANG_ID), P.phone(ZHANG_MOBILE)
    correlator.process(event(1, 0, [by_id]), 0, states, T0)
    correlator.process(event(2, 1, [by_id]), 0, states, T0)
    (first,) = correlator.process(event(3, 2, [by_id], Source.dept_alert, "police.fight"), 0, states, T0)[:1]
    correlator.process(event(4, 3, [by_mobile]), 0, states, T0)
    # merged into the mobile's pseudonym (say it was met first): the signal about the ID number goes on
    outcomes = correlator.merge_people([Merge(COUNTY, by_id, by_mobile)], event(5, 4, [by_mobile]), 0, states, T0)
    (update,) = [o for o in outcomes if o.signal.rule_id == "dispute_escalation"]
    assert update.signal.signal_id == first.signal.signal_id and update.signal.version == first.signal.version + 1
    assert update.signal.entity == f"{COUNTY}|{by_mobile}" and not update.escalated
    again = correlator.process(event(6, 5, [by_mobile], Source.dept_alert, "police.fight"), 0, states, T0)
    assert {o.signal.signal_id for o in again if o.signal.rule_id == "dispute_escalation"} == {first.signal.signal_id}


def test_a_name_shared_by_two_people_is_theirs_again_once_they_prove_to_be_one():
    links = DictLinks()
    (by_mobile,) = resolve(links, COUNTY, [person("王芳", phone=ZHANG_MOBILE)], at(0)).people
    resolve(links, COUNTY, [person("王芳", ZHANG_ID)], at(1))  # an ID number: maybe another 王芳
    assert resolve(links, COUNTY, [person("王芳")], at(2)).people == [P.name("王芳", COMMUNITY)]  # who knows
    found = resolve(links, COUNTY, [person("王芳", ZHANG_ID, ZHANG_MOBILE)], at(3))
    assert found.people == [by_mobile] and found.merges == [Merge(COUNTY, P.id_number(ZHANG_ID), by_mobile)]
    assert any(c.identifier == P.name("王芳", COMMUNITY) and not c.shared for c in found.changes)
    assert resolve(links, COUNTY, [person("王芳")], at(4)).people == [by_mobile]


def test_a_persons_risk_moves_with_them_and_keeps_its_signal():
    correlator, states = Correlator(ESCALATION), DictStates()
    by_id, by_mobile = P.id_number(ZHANG_ID), P.phone(ZHANG_MOBILE)
    for n, hours in ((1, 0), (2, 1)):
        correlator.process(event(n, hours, [by_id]), 0, states, T0)
    raised = correlator.process(event(3, 2, [by_id], Source.dept_alert, "police.fight"), 0, states, T0)
    (first,) = [o.signal for o in raised if o.signal.entity.startswith("person:")]  # 40: yellow
    outcomes = correlator.merge_people([Merge(COUNTY, by_id, by_mobile)], event(4, 3, [by_mobile]), 0, states, T0)
    assert not [o for o in outcomes if o.signal.rule_id == "entity_risk"]  # the same level: nothing to page
    assert f"entity_risk|person:{COUNTY}|{by_id}" not in states
    kept = states[f"entity_risk|person:{COUNTY}|{by_mobile}"]
    assert kept["level"] == "yellow" and kept["signal_entity"] == f"person:{COUNTY}|{by_id}"
    # the person's risk signal, when it next changes, is the same signal naming the person now
    again = risk.risk_signal("person", f"{COUNTY}|{by_mobile}", kept, 40.0, RiskLevel.yellow, {}, False, T0)
    assert again.signal_id == first.signal_id and again.entity == f"person:{COUNTY}|{by_mobile}"
