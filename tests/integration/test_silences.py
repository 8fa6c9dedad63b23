"""Silences (静默) through the real broker, worker, gateway and ClickHouse: a silenced rule's
signal is stored, marked, and pages no one; making and expiring a silence is audited; another
district cannot silence this one; the command line sees the same silences."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime, timedelta

import aiohttp

from schemas.contracts.events import BEIJING
from streams import topics
from streams.api.keys import KeyStore
from streams.app import Stack
from streams.cli.silences import run as cli
from streams.runtime.kafka import Cluster
from tests.helpers import COMMUNITY, grid_report
from tests.integration.conftest import on_kafka, produce
from tests.integration.test_ingestion import read_all


async def test_a_silenced_rule_s_signal_is_stored_marked_and_pages_no_one(tmp_path, kafka, capsys):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-silence")
    keys = KeyStore(settings.keys_path)
    mine, theirs = keys.add(f"centre:{COMMUNITY[:6]}"), keys.add("centre:210203")
    now = datetime.now(BEIJING).replace(microsecond=0)
    reports = [grid_report(n, at=now - timedelta(minutes=30 - n)) for n in (1, 2, 3)]
    async with Stack(settings) as stack:
        base = f"http://127.0.0.1:{stack.gateway.port}/v1/centres"
        ask = {"rule_id": "dispute_cluster", "region": COMMUNITY, "ends_at": (now + timedelta(hours=2)).isoformat(),
               "reason": "社区调解中心搬迁，纠纷由驻点调解员现场处理"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/210203/silences", json=ask,
                                 headers={"Authorization": f"Bearer {theirs[1]}"}) as r:
                assert r.status == 403  # not 西岗区's to silence
            async with http.post(f"{base}/{COMMUNITY[:6]}/silences", json={**ask, "rule_id": "no_such_rule"},
                                 headers={"Authorization": f"Bearer {mine[1]}"}) as r:
                assert r.status == 422
            async with http.post(f"{base}/{COMMUNITY[:6]}/silences", json=ask,
                                 headers={"Authorization": f"Bearer {mine[1]}"}) as r:
                assert r.status == 201
                silence = await r.json()
            assert silence["created_by"] == f"key:{mine[0].id}" and silence["region_code"] == COMMUNITY

            await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                          [(r["grid_code"].encode(), json.dumps(r, ensure_ascii=False).encode()) for r in reports])
            async with asyncio.timeout(60):
                while not (found := [s for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)
                                     if (s := json.loads(r.value))["rule_id"] == "dispute_cluster"]):
                    await asyncio.sleep(0.5)
            assert await stack.drain(timeout=60)
            dispute = found[-1]
            assert dispute["silenced_by"] == [silence["silence_id"]]
            notices = [json.loads(r.value) for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)]
            assert not [n for n in notices if n["signal_id"] == dispute["signal_id"]]  # paged no one
            assert stack.desk.case_for(dispute["signal_id"]) is None
            stored = stack.store.query("SELECT silenced_by FROM fengqiao.signals FINAL "
                                       f"WHERE signal_id = '{dispute['signal_id']}'")
            assert stored == [{"silenced_by": [silence["silence_id"]]}]  # stored, and shown as silenced
            assert stack.metrics.total(stack.metrics.signals_silenced, rule_id="dispute_cluster") >= 1

            async with http.get(f"{base}/{COMMUNITY[:6]}/silences", headers={"Authorization": f"Bearer {mine[1]}"}) as r:
                assert [s["silence_id"] for s in (await r.json())["silences"]] == [silence["silence_id"]]
            expire = f"{base}/{COMMUNITY[:6]}/silences/{silence['silence_id']}/expire"
            async with http.post(expire, headers={"Authorization": f"Bearer {theirs[1]}"}) as r:
                assert r.status == 403
            async with http.post(expire, headers={"Authorization": f"Bearer {mine[1]}"}) as r:
                assert r.status == 200
            async with http.post(expire, headers={"Authorization": f"Bearer {mine[1]}"}) as r:
                assert r.status == 409

        cluster = Cluster.of(settings, stack.bootstrap_servers)
        args = argparse.Namespace(action="add", centre=COMMUNITY, rule="fire_gas_hazard", region=None, entity=None,
                                  publisher=None, device=None, duration="4h", until=None, reason="燃气管道检修")
        assert await cli(args, settings, cluster) == 0
        assert await cli(argparse.Namespace(action="list", centre=COMMUNITY[:6]), settings, cluster) == 0
        listed = capsys.readouterr().out
        assert "fire_gas_hazard" in listed and silence["silence_id"] not in listed  # the expired one is not in force
        assert await stack.drain(timeout=60)
        audit = stack.store.query("SELECT silence_id, change, changed_by FROM fengqiao.silences FINAL "
                                  "ORDER BY changed_at")
        assert [(a["change"], a["changed_by"].split("@")[0]) for a in audit] == [
            ("created", f"key:{mine[0].id}"), ("expired", f"key:{mine[0].id}"), ("created", f"cli:{__import__('getpass').getuser()}")]


async def test_a_silenced_device_s_alarms_page_no_one_but_a_person_s_report_beside_them_does(tmp_path, kafka):
    """设备检修: a smoke alarm under repair is silenced by device from the command line. Its red
    alarm raises the urgent signal, stored and held back. A police report of a gathering in the
    same community within the hour joins that signal: it rests on the device alone no longer, and
    the centres hear of it then, as new, since they never did before."""
    from tests.helpers import dept_alert

    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-silence-device")
    now = datetime.now(BEIJING).replace(microsecond=0)
    alarm = dept_alert(1, department="fire", category="smoke_alarm", severity="red", subjects=[], text="烟感报警",
                       attributes={"device_id": "YG-0042"}, occurred_at=(now - timedelta(minutes=5)).isoformat())
    police = dept_alert(2, category="gathering", severity="red", occurred_at=now.isoformat())
    async with Stack(settings, gateway=False) as stack:
        cluster = Cluster.of(settings, stack.bootstrap_servers)
        args = argparse.Namespace(action="add", centre=COMMUNITY[:6], rule=None, region=None, entity=None,
                                  publisher=None, device="YG-0042", duration="4h", until=None, reason="烟感设备检修")
        assert await cli(args, settings, cluster) == 0
        async with asyncio.timeout(30):
            while not stack.pipeline.silences.values:  # the worker follows the silences topic
                await asyncio.sleep(0.2)

        async def urgent() -> list[dict]:
            return [s for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)
                    if (s := json.loads(r.value))["rule_id"] == "urgent_department_alert"]

        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS, [(b"fire", json.dumps(alarm).encode())])
        async with asyncio.timeout(60):
            while not await urgent():
                await asyncio.sleep(0.5)
        assert await stack.drain(timeout=60)
        [held] = await urgent()
        assert held["silenced_by"] and [e["device"] for e in held["evidence"]] == ["YG-0042"]
        assert await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES) == []

        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS,
                      [(b"police", json.dumps(police, ensure_ascii=False).encode())])
        async with asyncio.timeout(60):
            while len(versions := await urgent()) < 2:
                await asyncio.sleep(0.5)
        assert versions[-1]["signal_id"] == held["signal_id"] and versions[-1]["silenced_by"] == []
        assert await stack.drain(timeout=60)
        notices = [json.loads(r.value) for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)]
        told = [n for n in notices if n["signal_id"] == held["signal_id"]]
        assert told and not any(n["is_update"] for n in told)  # paged as new: they had not heard of it
        stored = stack.store.query("SELECT DISTINCT device FROM fengqiao.signal_evidence WHERE signal_id = {s:String} "
                                   "ORDER BY device", {"s": held["signal_id"]})
        assert stored == [{"device": ""}, {"device": "YG-0042"}]


async def test_a_signal_a_silence_held_pages_when_the_silence_ends_while_its_incident_is_open(tmp_path, kafka):
    """Alertmanager's behaviour: what a maintenance window held back and is still going on is
    sent once the window is over, as new, and only once."""
    from tests.helpers import dept_alert

    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-silence-ends")
    async with Stack(settings, gateway=False) as stack:
        now = datetime.now(BEIJING)
        ends = now + timedelta(seconds=20)
        alarm = dept_alert(1, department="fire", category="smoke_alarm", severity="red", subjects=[], text="烟感报警",
                           attributes={"device_id": "YG-0042"}, occurred_at=now.replace(microsecond=0).isoformat())
        cluster = Cluster.of(settings, stack.bootstrap_servers)
        args = argparse.Namespace(action="add", centre=COMMUNITY[:6], rule="urgent_department_alert", region=None,
                                  entity=None, publisher=None, device=None, duration=None, until=ends.isoformat(),
                                  reason="消防设施检修，窗口20秒")
        assert await cli(args, settings, cluster) == 0
        async with asyncio.timeout(30):
            while not stack.pipeline.silences.values:
                await asyncio.sleep(0.2)
        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS, [(b"fire", json.dumps(alarm).encode())])

        async def told() -> list[dict]:
            return [n for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)
                    if (n := json.loads(r.value))["rule_id"] == "urgent_department_alert"]

        async with asyncio.timeout(60):
            while not [r for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)]:
                await asyncio.sleep(0.5)
        if datetime.now(BEIJING) < ends:  # a slow machine may get here after the silence ended
            assert await told() == []  # held while in force
        async with asyncio.timeout(60):
            while not (sent := await told()):
                await asyncio.sleep(0.5)
        assert datetime.now(BEIJING) >= ends
        assert not any(n["is_update"] for n in sent) and {n["level"] for n in sent} == {"red"}
        await asyncio.sleep(3)
        assert len(await told()) == len(sent)  # once
