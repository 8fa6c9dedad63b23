"""The dispatch loop end to end: a red signal reaches all four centres; the community centre
acknowledges; nobody closes; the clock passes the closure deadline; the street centre gets a
supervision notice (督办); a centre of another district may not close it. After a restart of
the desk the cases and the supervisions already sent are where they were."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from schemas.contracts.broadcasts import EmergencyBroadcast
from schemas.contracts.signals import CentreNotice, NoticeRole
from streams import topics
from streams.api.keys import KeyStore
from streams.app import Stack
from streams.detection.ruleset import load_rules
from tests.helpers import COMMUNITY, T0, cap_xml, dept_alert
from tests.integration.conftest import on_kafka
from tests.integration.test_walking_skeleton import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

RED_RULE = """
id: violent_incident
name: 暴力事件警情
basis: Dalian art. 12 (test pack)
type: event_count
filter: {source: dept_alert, category: police.police_call_110}
group_by: {field: region_code, level: community}
window: 1h
threshold: 1
risk_score: 10
level: red
summary: "{place}：暴力警情"
"""
DRILL_RULE = """
id: broadcast_heard
name: 应急广播播发
basis: Dalian art. 17 (test pack)
type: event_count
filter: {source: broadcast}
group_by: {field: region_code, level: county}
window: 1h
threshold: 1
risk_score: 1
level: yellow
summary: "{place}：应急广播"
"""
CENTRES = [COMMUNITY, COMMUNITY[:9], COMMUNITY[:6], COMMUNITY[:4]]
OTHER_DISTRICT = "210203"


class Clock:
    """The clock the pipeline and the desk read; the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, module_kafka):
    root = tmp_path_factory.mktemp("dispatch")
    (root / "rules").mkdir()
    (root / "rules" / "violent_incident.yaml").write_text(RED_RULE, encoding="utf-8")
    (root / "rules" / "broadcast_heard.yaml").write_text(DRILL_RULE, encoding="utf-8")
    settings = on_kafka(module_kafka, data_dir=root / "data", gateway_port=0, metrics_port=0, app_id="fq-dispatch",
                        rules_dir=root / "rules", supervision_tick=0.2)
    keys = KeyStore(settings.keys_path)
    tokens = {c: keys.add(f"centre:{c}")[1] for c in [*CENTRES, OTHER_DISTRICT]}
    clock = Clock(T0 + timedelta(minutes=5))
    async with Stack(settings, rules=load_rules(root / "rules"), clock=clock) as stack:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
        await producer.start()
        await producer.send_and_wait(topics.DEPT_ALERTS.name, json.dumps(dept_alert(1), ensure_ascii=False).encode(),
                                     key=b"police")
        await producer.stop()
        yield stack, tokens, clock, settings


async def notices(stack, want: int) -> list[CentreNotice]:
    return [CentreNotice.model_validate_json(r.value)
            for r in await read_topic(stack.bootstrap_servers, topics.CENTRE_NOTICES.name, want)]


async def act(stack, token: str, centre: str, **body) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{stack.gateway.port}/v1/centres/{centre}/actions"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.post(url, json=body) as r:
            return r.status, await r.json()


async def stream(stack, token: str, centre: str, want: int) -> list[dict[str, str]]:
    """The first ``want`` events of a centre's Server-Sent Events stream."""
    url = f"http://127.0.0.1:{stack.gateway.port}/v1/centres/{centre}/stream"
    events: list[dict[str, str]] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.get(url) as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
            event: dict[str, str] = {}
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    if event:
                        events.append(event)
                        if len(events) == want:
                            return events
                    event = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    event[name] = value
    return events


async def until(predicate, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)


async def test_a_red_signal_reaches_all_four_centres_and_opens_a_case(world):
    stack, *_ = world
    got = await notices(stack, 4)
    assert sorted(n.centre_code for n in got) == sorted(CENTRES)
    assert {n.centre_code: n.role for n in got}[COMMUNITY] is NoticeRole.handle
    await until(lambda: len(stack.desk.cases) == 1)


async def test_the_loop_acknowledge_deadline_supervision_and_jurisdiction(world):
    stack, tokens, clock, _ = world
    await until(lambda: len(stack.desk.cases) == 1)
    signal_id = next(iter(stack.desk.cases))

    status, body = await act(stack, tokens[COMMUNITY], COMMUNITY, signal_id=signal_id, kind="close")
    assert status == 409 and body["error"] == "案件待签收，不能办结：请先签收"
    status, body = await act(stack, tokens[COMMUNITY], COMMUNITY, signal_id=signal_id, kind="acknowledge")
    assert status == 202 and body["state"] == "acknowledged"

    street_stream = asyncio.create_task(stream(stack, tokens[COMMUNITY[:9]], COMMUNITY[:9], want=1))
    district_stream = asyncio.create_task(stream(stack, tokens[OTHER_DISTRICT], OTHER_DISTRICT, want=1))
    await asyncio.sleep(0.5)
    clock.now = T0 + timedelta(hours=11)  # inside the 12 hours a red signal has to be closed
    await asyncio.sleep(1)
    assert stack.metrics.total(stack.metrics.supervisions) == 0
    clock.now = T0 + timedelta(hours=12, minutes=6)  # nobody closed it
    await until(lambda: stack.metrics.total(stack.metrics.supervisions) == 1)
    supervision = [n for n in await notices(stack, 5) if n.role is NoticeRole.supervise]
    assert [(n.centre_code, n.signal_id) for n in supervision] == [(COMMUNITY[:9], signal_id)]
    assert "督办" in supervision[0].summary
    (event,) = await asyncio.wait_for(street_stream, 10)  # the street centre's live stream carried it
    assert event["event"] == "supervise" and event["id"] == supervision[0].notice_id
    assert json.loads(event["data"])["centre_code"] == COMMUNITY[:9]
    await asyncio.sleep(1)
    assert not district_stream.done(), "another district's stream carries none of it"
    district_stream.cancel()

    status, body = await act(stack, tokens[OTHER_DISTRICT], OTHER_DISTRICT, signal_id=signal_id, kind="close")
    assert status == 403 and body["error"] == f"{COMMUNITY}不在210203综治中心辖区内，不能办结"
    status, _ = await act(stack, tokens[OTHER_DISTRICT], COMMUNITY[:6], signal_id=signal_id, kind="close")
    assert status == 403  # another centre's URL with this key
    status, _ = await act(stack, "fq_not-a-key", COMMUNITY, signal_id=signal_id, kind="close")
    assert status == 401
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tokens[OTHER_DISTRICT]}"}) as http:
        async with http.get(f"http://127.0.0.1:{stack.gateway.port}/v1/centres/{COMMUNITY[:6]}/stream") as r:
            assert r.status == 403  # a stream only with the centre's own key
    status, body = await act(stack, tokens[COMMUNITY], COMMUNITY, signal_id=signal_id, kind="assign")
    assert status == 422 and body["errors"][0]["message"].endswith("assign needs at least one department, or to_grid")


async def test_every_action_is_an_audit_row(world):
    stack, *_ = world
    assert await stack.drain(timeout=60)
    rows = stack.store.query("SELECT centre_code, kind, outcome, reason FROM fengqiao.dispatch_actions FINAL "
                             "ORDER BY recorded_at, kind")
    assert sorted((r["centre_code"], r["kind"], r["outcome"]) for r in rows) == sorted([
        (COMMUNITY, "acknowledge", "accepted"), (COMMUNITY, "close", "refused"),
        (COMMUNITY[:9], "supervise", "accepted"), (OTHER_DISTRICT, "close", "refused")])
    assert {r["reason"] for r in rows if r["outcome"] == "refused"} == {
        "案件待签收，不能办结：请先签收", f"{COMMUNITY}不在{OTHER_DISTRICT}综治中心辖区内，不能办结"}
    assert stack.store.count("notices") == 5


async def test_a_restarted_desk_keeps_the_cases_and_sends_no_supervision_twice(world):
    stack, *_ = world
    old = stack.desk
    await old.stop()
    from streams.dispatch.desk import DispatchDesk

    desk = DispatchDesk(stack.cluster, old.pseudonymiser, stack.metrics, old.clock, tick=0.2)
    await desk.start()
    try:
        (case,) = desk.cases.values()
        assert case.state.value == "acknowledged" and case.supervised == {f"close:0:{COMMUNITY[:9]}"}
        assert await desk.supervise() == 0
    finally:
        await desk.stop()


async def test_a_red_signal_drafts_a_broadcast_for_a_person_to_approve(world):
    stack, *_ = world
    (record,) = await read_topic(stack.bootstrap_servers, topics.BROADCAST_REQUESTS.name, 1)
    draft = EmergencyBroadcast.model_validate_json(record.value)
    assert draft.scope == "Restricted" and "须经值班人员审核批准" in draft.note
    assert draft.info[0].level.value == "red" and draft.info[0].severity.value == "Extreme"
    assert [g.value for g in draft.info[0].area[0].geocode] == [COMMUNITY]
    assert record.key.decode() == next(iter(stack.desk.cases))


async def test_a_drill_reaches_the_drill_channel_only(world):
    stack, *_ = world
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    await producer.start()
    await producer.send_and_wait(topics.EMERGENCY_BROADCASTS.name, cap_xml("DL-EX-1", status="Exercise"),
                                 key=b"dl-ebs")
    await producer.stop()
    drill = [CentreNotice.model_validate_json(r.value)
             for r in await read_topic(stack.bootstrap_servers, topics.DRILL_NOTICES.name, 1)]
    assert drill and all(n.drill and n.rule_id == "broadcast_heard" for n in drill)
    assert await stack.drain(timeout=60)
    live = [CentreNotice.model_validate_json(r.value)
            for r in await read_topic(stack.bootstrap_servers, topics.CENTRE_NOTICES.name, 5)]
    assert not any(n.rule_id == "broadcast_heard" for n in live), "no live centre is paged by a drill"
    assert drill[0].signal_id not in stack.desk.cases  # nor supervised
    stored = stack.store.query("SELECT count() AS n FROM fengqiao.notices FINAL WHERE drill")
    assert stored == [{"n": len(drill)}]
