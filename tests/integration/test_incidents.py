"""One case per incident (并案): a signal resting on others joins the case of what fed it at the
centre that handles both, through the real broker, worker and desk."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import aiohttp

from schemas.contracts.events import BEIJING
from streams import topics
from streams.api.keys import KeyStore
from streams.app import Stack
from tests.helpers import COMMUNITY, grid_report
from tests.integration.conftest import on_kafka, produce
from tests.integration.test_ingestion import read_all


async def test_an_entity_risk_joins_the_dispute_case_that_fed_it_one_case_for_one_incident(tmp_path, kafka):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-incident")
    token = KeyStore(settings.keys_path).add(f"centre:{COMMUNITY}")[1]
    start = datetime.now(BEIJING).replace(microsecond=0) - timedelta(hours=2)
    reports = [grid_report(n, at=start + timedelta(minutes=10 * n)) for n in (1, 2, 3)]  # a dispute cluster
    async with Stack(settings) as stack:
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                      [(r["grid_code"].encode(), json.dumps(r, ensure_ascii=False).encode()) for r in reports])
        async with asyncio.timeout(60):
            while not (signals := {s["rule_id"]: s for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)
                                   if (s := json.loads(r.value))}) or "entity_risk" not in signals:
                await asyncio.sleep(0.5)
            dispute, risk = signals["dispute_cluster"]["signal_id"], signals["entity_risk"]["signal_id"]
            while not (stack.desk.case_for(risk) and stack.desk.case_for(dispute)):
                await asyncio.sleep(0.2)
        # both notices reached the community centre; one case holds them
        notices = [json.loads(r.value) for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)]
        assert {n["signal_id"] for n in notices if n["centre_code"] == COMMUNITY} == {dispute, risk}
        assert [n["joins"] for n in notices if n["signal_id"] == risk] == [[dispute]]  # it says what it joins
        at_community = [c for c in stack.desk.cases_in(COMMUNITY) if c.handler == COMMUNITY]
        assert [(c.signal_id, c.joined) for c in at_community] == [(dispute, [risk])]
        url = f"http://127.0.0.1:{stack.gateway.port}/v1/centres/{COMMUNITY}/actions"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async with http.post(url, json={"signal_id": risk, "kind": "acknowledge"}) as r:  # by either signal
                assert r.status == 202 and (await r.json())["signal_id"] == dispute
            async with http.post(url, json={"signal_id": dispute, "kind": "acknowledge"}) as r:
                assert r.status == 409  # the one case is signed for already
