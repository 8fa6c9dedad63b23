"""The publisher gateway with real keys, a real broker and the pipeline behind it."""

from __future__ import annotations

import json
import stat

import aiohttp
import pytest
import pytest_asyncio

from streams import topics
from streams.api.keys import KeyStore
from streams.app import Stack
from tests.helpers import cap_xml, dept_alert, grid_report
from tests.integration.conftest import on_kafka
from tests.integration.test_walking_skeleton import read_topic
from tests.unit.test_contracts import XXE

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
KEYS: dict[str, str] = {}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory, module_kafka):
    settings = on_kafka(module_kafka, data_dir=tmp_path_factory.mktemp("fq"), gateway_port=0, metrics_port=0,
                        app_id="fq-gateway")
    store = KeyStore(settings.keys_path)
    for publisher in ("grid", "police", "broadcast"):
        KEYS[publisher] = store.add(publisher)[1]
    async with Stack(settings) as stack:
        yield stack


async def post(stack, kind: str, data: bytes | dict, key: str | None, content_type: str = "application/json"):
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{stack.gateway.port}/v1/{kind}", data=payload, headers=headers) as r:
            return r.status, await r.json(content_type=None)


async def test_no_key_or_a_wrong_key_is_401(gateway):
    assert (await post(gateway, "grid-reports", grid_report(1), None))[0] == 401
    assert (await post(gateway, "grid-reports", grid_report(1), "fq_not-a-key"))[0] == 401


async def test_a_publisher_publishes_only_its_own_kinds_and_department(gateway):
    status, body = await post(gateway, "grid-reports", grid_report(1), KEYS["police"])
    assert status == 403 and "police" in body["error"]
    civil = dept_alert(1, department="civil_affairs", category="subsistence_allowance")
    status, body = await post(gateway, "dept-alerts", civil, KEYS["police"])
    assert status == 403 and "civil_affairs" in body["error"]
    assert (await post(gateway, "emergency-broadcasts", cap_xml(), KEYS["grid"], "application/cap+xml"))[0] == 403


async def test_accepted_after_the_broker_acknowledged(gateway):
    status, body = await post(gateway, "dept-alerts", dept_alert(11), KEYS["police"])
    assert (status, body) == (202, {"accepted": ["police-000011"]})
    status, body = await post(gateway, "emergency-broadcasts", cap_xml("GW-CAP-1"), KEYS["broadcast"],
                              "application/cap+xml")
    assert (status, body) == (202, {"accepted": ["GW-CAP-1"]})


async def test_a_jsonl_batch_is_all_or_nothing(gateway):
    lines = [grid_report(n, category="hazard.fire") for n in (21, 22, 23)]
    batch = "\n".join(json.dumps(r, ensure_ascii=False) for r in lines).encode()
    status, body = await post(gateway, "grid-reports", batch, KEYS["grid"], "application/x-ndjson")
    assert (status, body) == (202, {"accepted": ["t-000021", "t-000022", "t-000023"]})
    bad = [grid_report(31), grid_report(32, category="party.recruitment"), grid_report(33)]
    bad[2]["location"]["lat"] = 400
    batch = "\n".join(json.dumps(r, ensure_ascii=False) for r in bad).encode()
    status, body = await post(gateway, "grid-reports", batch, KEYS["grid"], "application/x-ndjson")
    assert status == 422
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(2, "category"), (3, "location.lat")]
    assert body["errors"][0]["message"] == "not_in_catalogue"


async def test_hostile_xml_is_refused_with_its_reason(gateway):
    status, body = await post(gateway, "emergency-broadcasts", XXE, KEYS["broadcast"], "application/cap+xml")
    assert status == 422 and body["errors"][0]["reason"] == "xml_forbidden"


async def test_unknown_kind_is_404(gateway):
    assert (await post(gateway, "tax-returns", {}, KEYS["grid"]))[0] == 404


async def test_what_was_accepted_is_stored_and_nothing_of_a_refused_batch(gateway):
    assert await gateway.drain(timeout=30)
    ids = {r["event_id"] for r in gateway.store.query("SELECT event_id FROM fengqiao.events FINAL")}
    assert {"police-000011", "GW-CAP-1@210202000000", "t-000021", "t-000022", "t-000023"} <= ids
    assert not ids & {"t-000031", "t-000001", "civil_affairs-000001"}


async def test_refused_bodies_are_kept_whole_as_dead_letters_and_unauthenticated_ones_are_not(gateway):
    """What the gateway answered 422 is on dead-letters, original bytes and reason; 401s are not
    (keeping unauthenticated bodies would let anyone fill the store)."""
    assert await gateway.drain(timeout=30)
    rows = gateway.store.query("SELECT source_topic, reason, field, message FROM fengqiao.dead_letters FINAL "
                               "WHERE startsWith(source_topic, 'gateway/') ORDER BY reason")
    assert [(r["source_topic"], r["reason"], r["field"]) for r in rows] == [
        ("gateway/grid-reports", "not_in_catalogue", "line 2: category"),
        ("gateway/emergency-broadcasts", "xml_forbidden", "")]
    records = await read_topic(gateway.bootstrap_servers, topics.DEAD_LETTERS.name, 2)
    kept = {r.value for r in records if dict(r.headers)["fq.source.topic"].startswith(b"gateway/")}
    assert XXE in kept and any(b"party.recruitment" in v for v in kept)


async def test_keys_are_hashed_at_rest(gateway):
    path = gateway.settings.keys_path
    text = path.read_text()
    assert all(token not in text for token in KEYS.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_openapi_is_served_and_its_references_resolve(gateway):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{gateway.gateway.port}/openapi.json") as r:
            doc = await r.json()
    assert {"/v1/grid-reports", "/v1/dept-alerts", "/v1/emergency-broadcasts", "/v1/broadcast-receipts"} <= set(doc["paths"])
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert refs and refs <= set(doc["components"]["schemas"])


async def test_a_key_added_or_revoked_while_the_gateway_runs_takes_effect_at_once(gateway):
    """As an operator would: ``fengqiao keys add`` in another process while ``make run`` runs."""
    cli = KeyStore(gateway.settings.keys_path)  # another process's view of the same file
    record, token = cli.add("grid")
    status, body = await post(gateway, "grid-reports", grid_report(91, category="hazard.fire"), token)
    assert (status, body) == (202, {"accepted": ["t-000091"]})
    assert cli.revoke(record.id)
    assert (await post(gateway, "grid-reports", grid_report(92, category="hazard.fire"), token))[0] == 401
    assert (await post(gateway, "grid-reports", grid_report(93, category="hazard.fire"), KEYS["grid"]))[0] == 202
    # a keys file that cannot be read authenticates no one until it is mended (fail closed)
    good = gateway.settings.keys_path.read_bytes()
    gateway.settings.keys_path.write_text("{not json", encoding="utf-8")
    assert (await post(gateway, "grid-reports", grid_report(94, category="hazard.fire"), KEYS["grid"]))[0] == 401
    gateway.settings.keys_path.write_bytes(good)
    assert (await post(gateway, "grid-reports", grid_report(95, category="hazard.fire"), KEYS["grid"]))[0] == 202
