"""One person, one pseudonym (issue 18), through Apache Kafka, the worker and chdb.

Grid workers name people by mobile; the police name them by ID number and mobile. Without links
the two sources give each person two pseudonyms and ``dispute_escalation`` (the same person in
repeated disputes, then a police call) never fires. With them, it fires once for each of the
two people, each about one person pseudonym; and a link made after a signal was raised updates
that signal instead of raising a second.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from schemas.contracts.signals import RiskSignal
from streams import topics
from streams.app import Stack
from streams.intake.identity import Pseudonymiser
from tests.helpers import COMMUNITY, ID_NUMBER, MOBILE, T0, dept_alert, grid_report, id_number
from tests.integration.conftest import on_kafka, produce
from tests.integration.test_ingestion import body, read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

ZHANG = {"name": "张伟", "id_number": id_number(1), "phone": "13812345678"}
LI = {"name": "李娜", "id_number": id_number(2), "phone": "139-8765-4321"}
WANG = {"name": "王芳", "id_number": id_number(3, "210203"), "phone": "+86 135 0000 1234"}
OTHER = "210203001001"  # another county: links are kept per county


def by_mobile(person: dict[str, str]) -> dict[str, str]:
    return {"name": person["name"], "phone": person["phone"]}


def by_id(person: dict[str, str]) -> dict[str, str]:
    return {"name": person["name"], "id_number": person["id_number"]}


def report(n: int, hours: float, parties: list[dict[str, str]], community: str = COMMUNITY,
           category: str = "dispute.family") -> tuple[bytes, bytes]:
    doc = grid_report(n, community=community, category=category, at=T0 + timedelta(hours=hours), parties=parties,
                      text="网格员调解家庭纠纷", location={"region_code": community})
    return doc["grid_code"].encode(), body(doc)


def police(n: int, hours: float, subjects: list[dict[str, str]], community: str = COMMUNITY) -> tuple[bytes, bytes]:
    doc = dept_alert(n, category="domestic_violence", community=community, subjects=subjects, text="家暴警情",
                     occurred_at=(T0 + timedelta(hours=hours)).isoformat(), location={"region_code": community})
    return b"police", body(doc)


async def test_two_people_named_by_mobile_in_reports_and_by_id_number_to_the_police_escalate_once_each(
        tmp_path, kafka):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-linking")
    key = settings.pseudonym_key.get_secret_value().encode()
    p = Pseudonymiser(key)
    async with Stack(settings, gateway=False) as stack:
        both = [by_mobile(ZHANG), by_mobile(LI)]
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS, [report(1, 0, both), report(2, 30, both)])
        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS, [police(3, 50, [ZHANG, LI])])
        # the same person later, to another's account: 王芳 first met by mobile (a hazard she
        # reported), then two disputes and a police call by ID number alone, then one event with both
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS, [
            report(10, 0, [by_mobile(WANG)], OTHER, "hazard.gas"), report(11, 10, [by_id(WANG)], OTHER),
            report(12, 20, [by_id(WANG)], OTHER)])
        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS, [police(13, 30, [by_id(WANG)], OTHER)])
        assert await stack.drain(timeout=120)
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS, [report(14, 40, [WANG], OTHER, "hazard.gas")])
        assert await stack.drain(timeout=120)

        rows = stack.store.query("SELECT signal_id, entity, version, region_code FROM fengqiao.signals FINAL "
                                 "WHERE rule_id = 'dispute_escalation' ORDER BY entity")
        zhang, li, wang = (p.phone(ZHANG["phone"]), p.phone(LI["phone"]), p.phone(WANG["phone"]))
        assert [(r["entity"], r["region_code"]) for r in rows] == sorted(
            [(f"210202|{zhang}", COMMUNITY), (f"210202|{li}", COMMUNITY), (f"210203|{wang}", OTHER)])

        # 王芳's signal was raised about her ID number's pseudonym; the link updated it in place
        signals = [RiskSignal.model_validate_json(r.value) for r in await read_all(stack.bootstrap_servers,
                                                                                    topics.SIGNALS)]
        hers = [s for s in signals if s.rule_id == "dispute_escalation" and s.region_code == OTHER]
        assert len({s.signal_id for s in hers}) == 1
        assert [s.entity for s in hers] == [f"210203|{p.id_number(WANG['id_number'])}", f"210203|{wang}"]
        assert [s.version for s in hers] == [1, 2]
        notices = [json.loads(r.value) for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)]
        assert all(n["is_update"] for n in notices if n["signal_id"] == hers[0].signal_id and n["signal_version"] == 2)

        links = stack.store.query("SELECT county, identifier, kind, person, shared FROM fengqiao.person_links FINAL "
                                  "ORDER BY county, kind, identifier")
        person_of = {(r["county"], r["identifier"]): r["person"] for r in links}
        assert person_of[("210202", p.id_number(ZHANG["id_number"]))] == zhang
        assert person_of[("210202", p.name("张伟", COMMUNITY))] == zhang
        assert person_of[("210203", p.id_number(WANG["id_number"]))] == wang
        assert not any(r["shared"] for r in links)
        # analysts follow a person across sources: every event naming 张伟, by any identifier
        events = stack.store.query(
            "SELECT count() AS n FROM fengqiao.events AS e ARRAY JOIN e.subjects AS s "
            "JOIN (SELECT county, identifier FROM fengqiao.person_links FINAL WHERE person = {p:String}) AS l "
            "ON l.county = e.county AND l.identifier = s", {"p": zhang})
        assert events == [{"n": 3}]
        text = json.dumps(links + stack.store.query("SELECT identities FROM fengqiao.events"), ensure_ascii=False)
        assert not ID_NUMBER.search(text) and not MOBILE.search(text) and "张伟" not in text
        m = stack.metrics
        assert m.total(m.step_failures) == 0 and stack.alive()
