"""Registers through the real broker and worker: the special populations' register imported
from civil affairs' file, a CAP cold-wave warning, one of two elders visited (exactly one welfare
signal, for the other); the grid register's silent grid (a patrol gap, and none for the grid that
reports)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta

from schemas.contracts.events import BEIJING
from schemas.reference.regions import use_pack
from streams import topics
from streams.app import Stack, pseudonymiser
from streams.cli.population import import_register
from streams.cli.regions import grids
from streams.runtime.kafka import Cluster
from tests.helpers import COMMUNITY, cap_xml, grid_report, id_number
from tests.integration.conftest import on_kafka, produce
from tests.integration.test_alerting import until
from tests.integration.test_ingestion import read_all

ELDER_A, ELDER_B = id_number(31), id_number(32)


async def signals_of(bootstrap: str, rule_id: str) -> list[dict]:
    return [s for r in await read_all(bootstrap, topics.SIGNALS) if (s := json.loads(r.value))["rule_id"] == rule_id]


async def test_two_registered_elders_a_cold_wave_one_visited_gives_exactly_one_welfare_signal(tmp_path, module_kafka):
    settings = on_kafka(module_kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-register",
                        source_idle_seconds=2.0)
    now = datetime.now(BEIJING).replace(microsecond=0)
    register = tmp_path / "register.csv"
    on = (now - timedelta(days=10)).date().isoformat()
    register.write_text(
        "id_number,name,phone,population,community,on,action\n"
        f"{ELDER_A},王秀英,13700001111,独居老人,{COMMUNITY},{on},登记\n"
        f"{ELDER_B},刘桂兰,13700002222,elderly_alone,{COMMUNITY},{on},registered\n", encoding="utf-8")
    warning = cap_xml("DL-MET-CW-1", geocodes=("210202",), sent=(now - timedelta(hours=50)).isoformat())
    # the grid worker names the elder as grid workers do, by name and mobile: linking makes her one person
    visit = grid_report(9001, category="care.elderly_alone", at=now - timedelta(hours=20),
                        parties=[{"name": "王秀英", "phone": "13700001111"}], text="上门走访，老人身体状况良好。")
    async with Stack(settings, gateway=False) as stack:
        assert await import_register(register, Cluster.of(settings, stack.bootstrap_servers), settings) == 0
        await produce(stack.bootstrap_servers, topics.EMERGENCY_BROADCASTS, [(b"dalian-ebs", warning)])
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                      [(visit["grid_code"].encode(), json.dumps(visit, ensure_ascii=False).encode())])

        async def welfare() -> list[dict]:
            return await signals_of(stack.bootstrap_servers, "welfare_under_weather_warning")

        raised = await until(welfare)
        assert await stack.drain(timeout=60)
        raised = await welfare()
        owed = pseudonymiser(settings).id_number(ELDER_B)
        assert {s["entity"] for s in raised} == {f"{COMMUNITY}|{owed}"}  # exactly one, for the one not visited
        assert {s["signal_id"] for s in raised} == {raised[0]["signal_id"]}
        # unvisited for ten days, she is owed her weekly contact too; the visited elder is not
        contact = await signals_of(stack.bootstrap_servers, "regular_contact")
        assert {s["entity"] for s in contact} == {f"{COMMUNITY}|{owed}"}
        stored = stack.store.query("SELECT count() AS n FROM fengqiao.events FINAL "
                                   "WHERE category = 'civil_affairs.population_registered'")
        assert stored == [{"n": 2}]
        texts = stack.store.query("SELECT groupArray(text) AS t FROM fengqiao.events FINAL")[0]["t"]
        assert not any(ELDER_A in t or ELDER_B in t or "13700001111" in t for t in texts)


async def test_a_registered_grid_that_never_reports_raises_a_patrol_gap_and_one_that_reports_none(
        tmp_path, module_kafka):
    settings = on_kafka(module_kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-patrol",
                        source_idle_seconds=2.0)
    now = datetime.now(BEIJING).replace(microsecond=0)
    since = (now - timedelta(days=10)).date().isoformat()
    register = tmp_path / "grids.csv"
    register.write_text(
        "grid_code,community,name,type,households,workers,since\n"
        f"{COMMUNITY}001,{COMMUNITY},春德一网格,综合网格,320,GW0001,{since}\n"
        f"{COMMUNITY}002,{COMMUNITY},春德二网格,综合网格,290,GW0002,{since}\n", encoding="utf-8")
    report = grid_report(9101, category="environment.sanitation", at=now - timedelta(days=1))
    try:
        assert grids(argparse.Namespace(action="import", file=register), settings) == 0
        async with Stack(settings, gateway=False) as stack:
            await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                          [(report["grid_code"].encode(), json.dumps(report, ensure_ascii=False).encode())])

            async def gaps() -> list[dict]:
                return await signals_of(stack.bootstrap_servers, "patrol_gap")

            await until(gaps)
            assert await stack.drain(timeout=60)
            found = await gaps()
            assert {(s["entity"], s["level"]) for s in found} == {(f"{COMMUNITY}|{COMMUNITY}002", "blue")}
            notices = [json.loads(r.value) for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)
                       if b'"patrol_gap"' in r.value]
            assert {n["centre_code"] for n in notices} == {COMMUNITY}
    finally:
        use_pack(None)  # the synthetic grids again, for the tests after this one


DEMOLITION_RULE = """
id: demolition_dispute
name: 征地拆迁纠纷
basis: Dalian art. 21
type: event_count
filter: {category: dispute.demolition}
group_by: {field: region_code, level: community}
window: 24h
threshold: 1
level: blue
summary: "{place}：征地拆迁纠纷"
"""


async def test_a_matter_on_the_negative_list_is_refused_to_the_grids_and_handed_to_a_department(tmp_path, module_kafka):
    """A grid worker reports a demolition dispute; the community centre may not hand it to its
    grid workers (负面清单), and may assign it to a department."""
    import aiohttp

    from streams.api.keys import KeyStore
    from streams.detection.ruleset import load_rules

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "demolition_dispute.yaml").write_text(DEMOLITION_RULE, encoding="utf-8")
    settings = on_kafka(module_kafka, data_dir=tmp_path / "data", gateway_port=0, metrics_port=0,
                        app_id="fq-negative", rules_dir=tmp_path / "rules")
    token = KeyStore(settings.keys_path).add(f"centre:{COMMUNITY}")[1]
    report = grid_report(9201, category="dispute.demolition", at=datetime.now(BEIJING) - timedelta(minutes=5))
    async with Stack(settings, rules=load_rules(tmp_path / "rules")) as stack:
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                      [(report["grid_code"].encode(), json.dumps(report, ensure_ascii=False).encode())])

        async def opened() -> list:  # the module's broker holds the notices of the tests before this one
            return [(k, c) for k, c in stack.desk.cases.items() if c.rule_id == "demolition_dispute"]

        [(signal_id, case)] = await until(opened)
        assert case.matters == ["dispute.demolition"]
        url = f"http://127.0.0.1:{stack.gateway.port}/v1/centres/{COMMUNITY}/actions"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async def act(**body) -> tuple[int, dict]:
                async with http.post(url, json={"signal_id": signal_id, **body}) as r:
                    return r.status, await r.json()

            assert (await act(kind="acknowledge"))[0] == 202
            status, answer = await act(kind="assign", to_grid=True)
            assert status == 409 and "负面清单" in answer["error"] and "征地拆迁" in answer["error"]
            status, answer = await act(kind="assign", departments=["housing"])
            assert status == 202 and answer["departments"] == ["housing"] and not answer["to_grid"]
        assert await stack.drain(timeout=60)
        rows = stack.store.query("SELECT kind, to_grid, outcome FROM fengqiao.dispatch_actions FINAL "
                                 f"WHERE signal_id = '{signal_id}' ORDER BY recorded_at")
        assert [(r["kind"], r["to_grid"], r["outcome"]) for r in rows] == [
            ("acknowledge", False, "accepted"), ("assign", True, "refused"), ("assign", False, "accepted")]
