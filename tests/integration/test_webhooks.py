"""Webhooks: a receiver that answers 500 for a while and then recovers gets every notice of its
centres exactly once by id, signed; meanwhile the pipeline's event rate stays within 10%."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.contracts.signals import CentreNotice
from schemas.reference.regions import registry
from streams import topics
from streams.app import Stack
from streams.notify.webhooks import sign
from streams.runtime.topics import end_offsets
from tests.helpers import grid_report
from tests.integration.conftest import on_kafka

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

STREETS = ["210202001", "210202005"]
COMMUNITIES = [c.code for s in STREETS for c in registry().children(s)[:6]]  # six real ones of each street
SECRET = "s3cret-for-tests"
RATE = 50  # reports a second
PHASE = 15.0  # seconds: receiver up, then failing


CONSOLE = "https://fengqiao.example.gov.cn/console"


class Receiver:
    """A centre's system: checks each signature, answers 500 while failing, counts what it took."""

    def __init__(self) -> None:
        self.failing = False
        self.accepted: Counter[str] = Counter()
        self.refused = 0
        self.bad_signatures = 0
        self.notices: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = sign(SECRET.encode(), request.headers["X-Fengqiao-Timestamp"], body)
        if request.headers["X-Fengqiao-Signature"] != expected:
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.failing:
            self.refused += 1
            return web.Response(status=500)
        assert json.loads(body)["notice_id"] == request.headers["X-Fengqiao-Notice-Id"]
        self.notices.append(json.loads(body))
        self.accepted[request.headers["X-Fengqiao-Notice-Id"]] += 1
        return web.Response(status=204)


async def feed(bootstrap: str, stop: asyncio.Event, sent: list[int]) -> None:
    """Reports at a steady rate, with a dispute cluster in one of the hooked communities now and then;
    ``sent[0]`` counts them."""
    rng, n = random.Random(3), 0
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not stop.is_set():
            n += 1
            if n % 75 == 0:  # every 1.5 s: three disputes in the next community (a new signal, new notices)
                community = COMMUNITIES[(n // 75) % len(COMMUNITIES)]
                reports = [grid_report(n * 10 + i, community=community) for i in range(3)]
            else:
                reports = [grid_report(n * 10, community=rng.choice(COMMUNITIES), category="care.elderly_alone")]
            for report in reports:
                await producer.send(topics.GRID_REPORTS.name, json.dumps(report, ensure_ascii=False).encode(),
                                    key=report["grid_code"].encode())
            sent[0] += len(reports)
            await asyncio.sleep(max(0.0, started + n / RATE - loop.time()))
    finally:
        await producer.stop()


async def hooked_notice_ids(bootstrap: str) -> set[str]:
    """Every notice on the topic addressed to a centre with a hook."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    ends_reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    await ends_reader.start()
    try:
        tps = [TopicPartition(topics.CENTRE_NOTICES.name, p) for p in range(topics.CENTRE_NOTICES.base_partitions)]
        ends = await end_offsets(ends_reader, tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ids = set()
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    notice = CentreNotice.model_validate_json(r.value)
                    if notice.centre_code in (*STREETS, *COMMUNITIES):
                        ids.add(notice.notice_id)
        return ids
    finally:
        await consumer.stop()
        await ends_reader.stop()


async def test_a_receiver_outage_loses_nothing_repeats_nothing_and_slows_nothing(tmp_path, monkeypatch, kafka):
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    monkeypatch.setenv("FQ_TEST_HOOK_SECRET", SECRET)
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text("hooks:\n" + "".join(f"  - {{centre: '{c}', url: '{url}', secret_env: FQ_TEST_HOOK_SECRET}}\n"
                                          for c in [*STREETS, *COMMUNITIES]))
    settings = on_kafka(kafka, data_dir=tmp_path / "data", gateway_port=0, metrics_port=0, app_id="fq-hooks",
                        webhooks_file=hooks, console_url=CONSOLE)
    try:
        async with Stack(settings, gateway=False) as stack:
            m = stack.metrics
            stop = asyncio.Event()
            sent = [0]
            feeding = asyncio.create_task(feed(stack.bootstrap_servers, stop, sent))
            # Past the start-up: the worker has caught up with the feed (a few events behind at most),
            # so that neither window counts a backlog being worked off.
            async with asyncio.timeout(60):
                while sent[0] < RATE or m.total(m.events_valid) < sent[0] - 5:
                    await asyncio.sleep(0.1)

            before = m.total(m.events_valid)
            await asyncio.sleep(PHASE)
            rate_up = (m.total(m.events_valid) - before) / PHASE
            receiver.failing = True
            before = m.total(m.events_valid)
            await asyncio.sleep(PHASE)
            rate_down = (m.total(m.events_valid) - before) / PHASE
            receiver.failing = False
            stop.set()
            await feeding

            assert receiver.refused > 0 and m.total(m.webhook_retries) > 0
            assert abs(rate_down - rate_up) <= 0.1 * rate_up, (rate_up, rate_down)
            assert await stack.drain(timeout=60)
            sent = await hooked_notice_ids(stack.bootstrap_servers)
            assert len(sent) >= 10
            async with asyncio.timeout(90):  # the retries after the outage
                while set(receiver.accepted) != sent:
                    await asyncio.sleep(0.5)
            assert set(receiver.accepted.values()) == {1}, "each notice delivered once"
            assert receiver.bad_signatures == 0 and m.total(m.webhook_dead_letters) == 0
            # what the centre needs to act, without opening another system: the place, the object, the case
            assert all(n["case_url"] == f"{CONSOLE}/cases/{n['signal_id']}" and n["place"].startswith("大连市")
                       and n["entity"] for n in receiver.notices)
    finally:
        await runner.cleanup()
