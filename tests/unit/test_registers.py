"""Registers at intake: the populations register file, registrations and weather hazards as the
rules read them."""

import json

import pytest

from schemas.reference.regions import Level, read_grids, registry
from streams.intake.hazards import hazard_of
from streams.intake.identity import Pseudonymiser
from streams.intake.registers import RegisterError, registrations, rows_naming
from streams.intake.validation import Accepted, Validator
from streams.runtime.deadletter import DeadLetter, Origin
from tests.helpers import COMMUNITY, T0, cap_xml, dept_alert, id_number

P = Pseudonymiser(b"test-key")
V = Validator(P)
COMMUNITIES = {r.code for r in registry().of_level(Level.community)}
HEADER = "id_number,name,phone,population,community,on,action\n"


@pytest.mark.parametrize("text, hazard", [
    ("寒潮蓝色预警", "cold_wave"), ("大连市气象台发布暴雪黄色预警信号", "blizzard"), ("高温橙色预警", "heat_wave"),
    ("Cold Wave Warning", "cold_wave"), ("Extreme heat", "heat_wave"), ("Blizzard Warning", "blizzard"),
    ("台风红色预警", "typhoon"), ("Heavy Rain", "rainstorm"), ("大风", "gale"), ("地质灾害气象风险预警", ""),
    ("", ""),
])
def test_a_warning_s_hazard_is_named_whichever_way_it_is_written(text, hazard):
    assert hazard_of(text) == hazard


def accept(raw: bytes, kind: str = "dept_alert") -> Accepted | DeadLetter:
    where = Origin("dept-alerts" if kind == "dept_alert" else "emergency-broadcasts", 0, 0)
    if kind == "dept_alert":
        return V.dept_alert(raw, where, T0)
    return V.broadcast(raw, where, T0, lambda key: None)


def test_a_cap_cold_wave_and_a_weather_bureau_s_cold_wave_name_one_hazard():
    cap = accept(cap_xml(), "broadcast")
    bureau = accept(json.dumps(dept_alert(1, department="weather", category="cold_wave", subjects=[])).encode())
    assert isinstance(cap, Accepted) and isinstance(bureau, Accepted)
    assert cap.events[0].attributes["hazard"] == bureau.events[0].attributes["hazard"] == "cold_wave"
    cancel = accept(cap_xml("DL-EBS-0002", msg_type="Cancel", references="dalian-ebs,DL-EBS-0001,2026-11-20T08:00:00+08:00"),
                    "broadcast")
    assert isinstance(cancel, Accepted) and "hazard" not in cancel.events[0].attributes  # a Cancel warns of nothing


def test_a_registration_names_its_kind_and_its_person_pseudonymised():
    alert = dept_alert(1, department="civil_affairs", category="population_registered",
                       attributes={"population": "left_behind_child"})
    event = accept(json.dumps(alert).encode()).events[0]
    assert event.attributes["register"] == "registered" and event.attributes["population"] == "left_behind_child"
    assert event.subjects == [P.id_number(id_number(1))]
    legacy = accept(json.dumps(dept_alert(2, department="civil_affairs", category="elderly_alone_registered")).encode())
    assert legacy.events[0].attributes["population"] == "elderly_alone"


@pytest.mark.parametrize("change, message", [
    ({"attributes": {}}, "population None is not one of"),
    ({"attributes": {"population": "elderly"}}, "population 'elderly' is not one of"),
    ({"subjects": []}, "names the person it registers"),
])
def test_a_registration_without_its_kind_or_its_person_is_dead_lettered_naming_the_field(change, message):
    alert = {**dept_alert(1, department="civil_affairs", category="population_deregistered",
                          attributes={"population": "disabled"}), **change}
    dead = accept(json.dumps(alert).encode())
    assert isinstance(dead, DeadLetter) and dead.field == "attributes" and message in dead.message


def test_a_register_file_becomes_one_registration_per_row_with_ids_that_say_nothing_of_the_person():
    text = HEADER + (f"{id_number(1)},王秀英,13700001111,独居老人,{COMMUNITY},2026-11-01,登记\n"
                     f"{id_number(1)},王秀英,,disabled,{COMMUNITY},2026-11-01,\n"
                     f"{id_number(1)},王秀英,,disabled,{COMMUNITY},2026-12-01,注销\n")
    rows = registrations(text, P, COMMUNITIES)
    assert [(n, d["category"], d["attributes"]["population"]) for n, d in rows] == [
        (2, "population_registered", "elderly_alone"), (3, "population_registered", "disabled"),
        (4, "population_deregistered", "disabled")]
    assert all(id_number(1) not in d["event_id"] for _, d in rows) and len({d["event_id"] for _, d in rows}) == 3
    assert rows == registrations(text, P, COMMUNITIES)  # the same file twice: the same ids (a re-import is no news)
    assert all(isinstance(accept(json.dumps(d).encode()), Accepted) for _, d in rows)
    # the holder of the file finds the person a signal names; nobody else can
    assert rows_naming(text, P, P.id_number(id_number(1))) == [(2, "王秀英", "独居老人"), (3, "王秀英", "disabled"),
                                                                (4, "王秀英", "disabled")]
    assert rows_naming(text, Pseudonymiser(b"another-key"), P.id_number(id_number(1))) == []


def test_a_register_file_with_wrong_rows_is_refused_whole_naming_each_line():
    text = HEADER + (f"{id_number(1)},王秀英,,独居老人,{COMMUNITY},2026-11-01,\n"
                     f"110101199001011234,李四,,独居老人,{COMMUNITY},2026-11-01,\n"
                     f"{id_number(2)},张三,,孤儿,{COMMUNITY},2026-11-01,\n"
                     f"{id_number(3)},赵五,,低保对象,210202999999,2026-11-01,\n"
                     f"{id_number(4)},钱六,,低保对象,{COMMUNITY},11/01/2026,\n")
    with pytest.raises(RegisterError) as refused:
        registrations(text, P, COMMUNITIES)
    assert [p.split(":")[0] for p in refused.value.problems] == ["line 3", "line 4", "line 5", "line 6"]
    assert "check digit" in refused.value.problems[0] and "孤儿" in refused.value.problems[1]


def test_a_grid_is_on_the_register_from_its_since_date_or_from_the_day_the_register_was_installed():
    text = ("# installed: 2026-12-01\ngrid_code,community,name,type,households,workers,since\n"
            f"{COMMUNITY}001,{COMMUNITY},一网格,综合网格,300,GW1,2026-10-01\n"
            f"{COMMUNITY}002,{COMMUNITY},二网格,综合网格,300,GW2,\n")
    assert [g.since for g in read_grids(text, COMMUNITIES)] == ["2026-10-01", "2026-12-01"]
