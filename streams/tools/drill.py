"""Reliability drills (可靠性演练): crashes, a store outage, a burst, hostile input, failing
webhooks, and on Apache Kafka a broker killed, a broker paused and workers moved, each run against
the real parts and accounted against a ledger of what was sent.

``make drill`` (``fengqiao drill``) prints one row per scenario: events sent, lost (sent and valid
but not in ClickHouse after FINAL), duplicated (in ClickHouse more than once after FINAL), and the
recovery time. Every scenario starts from nothing: its own broker (a three-node Apache Kafka
cluster: 3 copies, 2 in sync; or the embedded tansu with ``--broker tansu``), data directory and
group.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from schemas.reference.regions import Level, registry
from streams import topics
from streams.api.keys import KeyStore
from streams.app import Stack
from streams.config import Settings
from streams.notify.webhooks import Retry
from streams.runtime.broker import EmbeddedBroker
from streams.runtime.kafka import Cluster
from streams.runtime.kraft import KRaftCluster, Node
from streams.runtime.topics import drained as wait_drained
from streams.runtime.topics import ensure_topics
from streams.store.clickhouse import EmbeddedStore, Store
from streams.tools.bench import progress
from streams.tools.processes import WorkerProcess
from streams.tools.simulator import CitySimulator
from streams.worker.pipeline import groups

KAFKA_NODES = 3
RESTART_AFTER = 5.0  # seconds, on tansu: the worker's session timeout (3 s) and a margin


@dataclass
class Outcome:
    scenario: str
    events: int
    lost: int
    duplicated: int
    recovery_s: float | None
    detail: str

    @property
    def passed(self) -> bool:
        """Nothing lost or doubled, and recovered (drained) within the scenario's wait."""
        return self.lost == 0 and self.duplicated == 0 and self.recovery_s is not None


def feed(cluster: Cluster, seed: int, rate: float, incident_every: float = 3.0) -> CitySimulator:
    """The city simulator keeping a ledger: the uid of every report it sends."""
    sim = CitySimulator(cluster, rate=rate, seed=seed, incident_every=incident_every)
    sim.ledger = []
    return sim


async def send(sim: CitySimulator, seconds: float) -> None:
    await sim.run(first_incident_after=0, seconds=seconds)


def account(store: Store, sim: CitySimulator) -> tuple[int, int, str]:
    """(lost, duplicated, detail) of what the simulator sent: events, signals and incidents."""
    stored = {r["uid"] for r in store.query("SELECT uid FROM fengqiao.events FINAL")}
    rows = store.count("events", final=True)
    signals = store.query("SELECT entity, rule_id FROM fengqiao.signals FINAL")
    doubled = store.query("SELECT count() - uniqExact(signal_id) AS n FROM fengqiao.signals FINAL")[0]["n"]
    found = {s["entity"] for s in signals if s["rule_id"] == "dispute_cluster"}
    incidents = set(sim.incidents)
    missed = len(incidents - found)
    notices = store.query("SELECT count() - uniqExact(notice_id) AS n FROM fengqiao.notices FINAL")[0]["n"]
    lost = len(set(sim.ledger or ()) - stored) + missed
    duplicated = rows - len(stored) + int(doubled) + int(notices)
    return lost, duplicated, f"{len(signals)} signals; incidents found {len(incidents) - missed}/{len(incidents)}"


async def drained(cluster: Cluster, app_id: str, timeout: float) -> float | None:
    """Seconds until every step of the worker ``app_id`` has committed everything it consumes, or None."""
    return await wait_drained(cluster, groups(app_id), timeout)


class Site:
    """Where one scenario runs: a broker of its own (``kafka``: three Apache Kafka nodes; ``tansu``:
    the embedded broker) in a directory of its own."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind, self.directory = kind, directory
        self.broker: EmbeddedBroker | KRaftCluster = (
            KRaftCluster(directory / "kafka", KAFKA_NODES) if kind == "kafka" else EmbeddedBroker())

    def __enter__(self) -> Site:
        self.broker.start()
        self.cluster = self.broker.cluster()
        return self

    def __exit__(self, *exc: object) -> None:
        self.broker.stop()

    def settings(self, **values: Any) -> Settings:
        """Settings for a stack on this site's broker."""
        return Settings(kafka_bootstrap_servers=self.cluster.bootstrap_servers, broker=self.kind,
                        kafka_replication_factor=self.cluster.topology.replication,
                        kafka_session_timeout=self.cluster.session_timeout, **values)


async def with_worker(name: str, kind: str,
                      body: Callable[[Site, WorkerProcess], Awaitable[tuple[CitySimulator, float | None, str]]]) -> Outcome:
    """Run ``body`` with a broker and a worker process; account for its feed in the worker's store."""
    with tempfile.TemporaryDirectory(prefix=f"drill-{name}-") as tmp, Site(kind, Path(tmp)) as site:
        await ensure_topics(site.cluster, topics.ALL)
        worker = WorkerProcess(site.cluster, Path(tmp) / "worker", "drill-" + name.replace(" ", "-"))
        worker.start()
        try:
            sim, recovery, note = await body(site, worker)
            if await drained(site.cluster, worker.group, 180) is None:
                note += "; not drained within 180 s"
        finally:
            worker.stop()
        store = EmbeddedStore(str(Path(tmp) / "worker" / "clickhouse"))
        try:
            lost, duplicated, detail = account(store, sim)
        finally:
            store.close()
    return Outcome(name, sim.sent, lost, duplicated, recovery, "; ".join(x for x in (note, detail) if x))


async def crash(quick: bool, kind: str) -> Outcome:
    """SIGKILL the worker at random moments while the simulator runs, and start another."""
    restart_after = RESTART_AFTER if kind == "tansu" else 0.0

    async def body(site: Site, worker: WorkerProcess) -> tuple[CitySimulator, float | None, str]:
        sim, rng = feed(site.cluster, seed=101, rate=60), random.Random(101)
        seconds = 20 if quick else 45
        feeding = asyncio.create_task(send(sim, seconds))
        recoveries, loop = [], asyncio.get_running_loop()
        start = loop.time()
        for at in sorted(rng.uniform(3, seconds - 5) for _ in range(2)):
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            worker.kill()
            killed = loop.time()
            progress(f"  crash: worker killed after {at:.1f}s; another starts {restart_after:.0f}s after")
            # On tansu only, like a supervisor's restart back-off: tansu does not rebalance a group
            # when a dead member expires, so a replacement that joins before the expiry keeps a
            # partial assignment and the rest is never read (this drill found it). Apache Kafka's
            # coordinator expels the dead member and rebalances: there the worker restarts at once.
            await asyncio.sleep(restart_after)
            await asyncio.to_thread(worker.start)
            recoveries.append(loop.time() - killed)
        await feeding
        return sim, max(recoveries), (f"2 SIGKILLs; a new worker ready {', '.join(f'{r:.1f}s' for r in recoveries)} "
                                       f"after each kill (restarted {restart_after:.0f}s after it)")

    return await with_worker("crash", kind, body)


async def burst(quick: bool, kind: str) -> Outcome:
    """Ten times the normal rate for a minute (in quick mode, for 10 s); the worker's peak RSS."""
    async def body(site: Site, worker: WorkerProcess) -> tuple[CitySimulator, float | None, str]:
        normal, seconds = 20, (10 if quick else 60)
        sim = feed(site.cluster, seed=202, rate=normal)
        await send(sim, 5)
        sampling = asyncio.create_task(_sample(worker))
        sim.rate = normal * 10
        await send(sim, seconds)
        catch_up = await drained(site.cluster, worker.group, 180)
        sampling.cancel()
        worker.sample_rss()
        return sim, catch_up, f"{normal * 10}/s for {seconds}s; peak RSS {worker.peak_rss_kb / 1024:.0f} MiB"

    return await with_worker("burst", kind, body)


async def _sample(worker: WorkerProcess) -> None:
    while True:
        worker.sample_rss()
        await asyncio.sleep(0.5)


async def store_outage(quick: bool, kind: str) -> Outcome:
    """ClickHouse refuses (the events table detached) for 30 s (8 s quick) while reports flow."""
    outage = 8 if quick else 30
    with tempfile.TemporaryDirectory(prefix="drill-outage-") as tmp, Site(kind, Path(tmp)) as site:
        settings = site.settings(data_dir=Path(tmp) / "data", gateway_port=0, metrics_port=0, app_id="drill-outage")
        async with Stack(settings, gateway=False) as stack:
            assert stack.store is not None
            sim = feed(stack.cluster, seed=303, rate=40)
            feeding = asyncio.create_task(send(sim, outage + 10))
            await asyncio.sleep(3)
            await stack.store.run(stack.store.execute, "DETACH TABLE fengqiao.events")
            await asyncio.sleep(outage)
            await stack.store.run(stack.store.execute, "ATTACH TABLE fengqiao.events")
            recovered = time.monotonic()
            await feeding
            done = await drained(stack.cluster, settings.app_id, 180)
            recovery = time.monotonic() - recovered if done is not None else None
            retries = stack.metrics.total(stack.metrics.sink_retries)
            lost, duplicated, detail = account(stack.store, sim)
    return Outcome("store outage", sim.sent, lost, duplicated, recovery,
                   f"{outage}s without the events table, {retries} insert retries; {detail}")


HOSTILE_KAFKA = [b"", b"\x00\xff\xfe garbage", b"{", b"[]", b'{"event_id": 1}', b"\xff" * 64, b"a" * 200_000,
                 b'{"event_id": "x", "grid_code": {"nested": [1, 2]}}']
XXE = (b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>')
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
          b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><alert>&lol3;</alert>')


async def hostile(quick: bool, kind: str) -> Outcome:
    """Hostile input on every path: each input topic and the gateway; every byte kept with a reason."""
    with tempfile.TemporaryDirectory(prefix="drill-hostile-") as tmp, Site(kind, Path(tmp)) as site:
        settings = site.settings(data_dir=Path(tmp) / "data", gateway_port=0, metrics_port=0, app_id="drill-hostile")
        keys = KeyStore(settings.keys_path)
        tokens = {p: keys.add(p)[1] for p in ("grid", "police", "broadcast")}
        async with Stack(settings) as stack:
            producer = stack.cluster.producer(acks="all", max_request_size=1 << 20)
            await producer.start()
            sent = 0
            for spec in topics.INPUTS:
                for raw in [*HOSTILE_KAFKA, XXE, LAUGHS]:
                    await producer.send_and_wait(spec.name, raw)
                    sent += 1
            await producer.stop()
            gateway = [("grid-reports", "grid", b"{not json"), ("dept-alerts", "police", b'{"department": 7}'),
                       ("emergency-broadcasts", "broadcast", XXE), ("emergency-broadcasts", "broadcast", LAUGHS),
                       ("broadcast-receipts", "broadcast", b"[1, 2, 3]")]
            async with aiohttp.ClientSession() as http:
                for kind, who, body in gateway:
                    async with http.post(f"http://127.0.0.1:{stack.gateway.port}/v1/{kind}", data=body,
                                         headers={"Authorization": f"Bearer {tokens[who]}"}) as r:
                        assert r.status == 422, (kind, r.status)
            sent += len(gateway)
            done = await drained(stack.cluster, settings.app_id, 120)
            assert stack.store is not None
            kept = stack.store.query("SELECT count() AS n, countIf(reason = '') AS unexplained "
                                     "FROM fengqiao.dead_letters FINAL")[0]
            alive = stack.pipeline is not None and stack.pipeline.running
    lost = sent - int(kept["n"])
    return Outcome("hostile input", sent, max(lost, 0), max(-lost, 0), done,
                   f"{len(topics.INPUTS)} topics and the gateway; {kept['n']} dead letters, "
                   f"{kept['unexplained']} without a reason; worker {'running' if alive else 'STOPPED'}")


async def webhooks(quick: bool, kind: str) -> Outcome:
    """Receivers that answer 500, time out, or hang: retried, then dead-lettered; the rate holds."""
    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(status=204)

    async def hang(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/500", failing)
    app.router.add_post("/slow", slow)
    app.router.add_post("/hang", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        with tempfile.TemporaryDirectory(prefix="drill-webhooks-") as tmp, Site(kind, Path(tmp)) as site:
            communities = [r.prefix for r in registry().of_level(Level.community) if r.code.startswith("2102")]
            hooks = Path(tmp) / "hooks.yaml"
            hooks.write_text("hooks:\n" + "".join(f"  - {{centre: '{c}', url: '{base}/{path}', secret: drill}}\n"
                                                  for c in communities for path in ("500", "slow", "hang")))
            settings = site.settings(data_dir=Path(tmp) / "data", gateway_port=0, metrics_port=0,
                                     app_id="drill-webhooks", webhooks_file=hooks)
            async with Stack(settings, gateway=False) as stack:
                assert stack.notifier is not None and stack.store is not None
                stack.notifier.retry = Retry(attempts=3, first_delay=0.2, max_delay=1.0, timeout=1.0)
                m = stack.metrics
                sim = feed(stack.cluster, seed=404, rate=40, incident_every=1.5)
                await send(sim, 10 if quick else 30)
                done = await drained(stack.cluster, settings.app_id, 120)
                processed = m.total(m.events_valid)
                expected = 3 * m.total(m.notices, channel=topics.CENTRE_NOTICES.name, centre_level="community")

                def settled() -> int:  # delivered (the slow receiver may answer in time) or dead-lettered
                    return m.total(m.notices, channel="webhook") + m.total(m.webhook_dead_letters)

                deadline = time.monotonic() + 60
                while settled() < expected and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                letters, settled_now = m.total(m.webhook_dead_letters), settled()
                lost, duplicated, detail = account(stack.store, sim)
    finally:
        await runner.cleanup()
    return Outcome("webhooks failing", sim.sent, lost + max(0, expected - settled_now), duplicated, done,
                   f"receivers answer 500, time out, hang: {settled_now} of {expected} deliveries settled, "
                   f"{letters} dead-lettered after 3 attempts; the pipeline processed {processed} of "
                   f"{sim.sent} fed and drained {0 if done is None else done:.1f}s after; {detail}")


async def _leader(site: Site, topic: str, partition: int = 0) -> Node:
    """The Kafka node leading a partition now."""
    admin = site.cluster.admin()
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        leader = next(p["leader"] for p in described["partitions"] if p["partition"] == partition)
    finally:
        await admin.close()
    assert isinstance(site.broker, KRaftCluster)
    return next(n for n in site.broker.members if n.node_id == leader)


async def _broker_down(name: str, kind: str, topic: str, seed: int, seconds: float, how: str,
                       fail: Callable[[KRaftCluster, Node], None], heal: Callable[[KRaftCluster, Node], None]
                       ) -> Outcome:
    """Under load, ``fail`` the node leading ``topic``/0 for ``seconds``, then ``heal`` it; the
    recovery is the time from the healing until the worker has drained what was sent."""
    async def body(site: Site, worker: WorkerProcess) -> tuple[CitySimulator, float | None, str]:
        assert isinstance(site.broker, KRaftCluster)
        sim = feed(site.cluster, seed=seed, rate=40)
        feeding = asyncio.create_task(send(sim, seconds + 15))
        await asyncio.sleep(4)
        node = await _leader(site, topic)
        fail(site.broker, node)
        progress(f"  {name}: node {node.node_id}, leader of {topic}/0, {how} for {seconds}s")
        await asyncio.sleep(seconds)
        await asyncio.to_thread(heal, site.broker, node)
        healed = time.monotonic()
        await feeding
        done = await drained(site.cluster, worker.group, 180)
        return sim, None if done is None else time.monotonic() - healed, \
            f"node {node.node_id} (leader of {topic}/0) {how} under load for {seconds}s"

    return await with_worker(name, kind, body)


async def broker_killed(quick: bool, kind: str) -> Outcome:
    """SIGKILL the Kafka node leading ``events``/0 (and whatever else it leads) under load; start it
    again 20 s later (8 s quick)."""
    return await _broker_down("broker killed", kind, topics.EVENTS.name, 505, 8 if quick else 20, "SIGKILLed",
                              KRaftCluster.kill, KRaftCluster.restart)


async def broker_paused(quick: bool, kind: str) -> Outcome:
    """SIGSTOP the Kafka node leading ``grid-reports``/0 for 30 s (10 s quick), then SIGCONT: a
    node that hangs rather than dies."""
    return await _broker_down("broker paused", kind, topics.GRID_REPORTS.name, 606, 10 if quick else 30,
                              "SIGSTOPped", KRaftCluster.pause, KRaftCluster.resume)


async def workers_moved(quick: bool, kind: str) -> Outcome:
    """Three workers; one SIGKILLed and one added while the simulator runs: the group coordinator
    moves partitions and their state among them."""
    seconds = 25 if quick else 60
    with tempfile.TemporaryDirectory(prefix="drill-workers-") as tmp, Site(kind, Path(tmp)) as site:
        await ensure_topics(site.cluster, topics.ALL)
        group = "drill-workers"
        workers = [WorkerProcess(site.cluster, Path(tmp) / f"w{n}", group) for n in range(4)]
        for w in workers[:3]:
            await asyncio.to_thread(w.start)
        sim = feed(site.cluster, seed=707, rate=40)
        try:
            feeding = asyncio.create_task(send(sim, seconds))
            await asyncio.sleep(seconds / 3)
            workers[1].kill()
            killed = time.monotonic()
            progress("  workers moved: worker 2 of 3 SIGKILLed; a fourth joins")
            await asyncio.to_thread(workers[3].start)
            await feeding
            done = await drained(site.cluster, group, 180)
            recovery = None if done is None else time.monotonic() - killed
        finally:
            for w in workers:
                w.stop()
        lost, duplicated, detail = account_all([Path(tmp) / f"w{n}" / "clickhouse" for n in range(4)], sim)
    return Outcome("workers moved", sim.sent, lost, duplicated, recovery,
                   f"3 workers, one SIGKILLed after {seconds / 3:.0f}s and one added; {detail}")


def account_all(stores: list[Path], sim: CitySimulator) -> tuple[int, int, str]:
    """``account`` over the stores of several workers, each its own chdb (a chdb belongs to one
    process). Duplicated is what one store holds twice after FINAL. An event in two stores was
    replayed after a kill into the next owner's store, as at-least-once delivery does: one
    ClickHouse's FINAL keeps one of them, so it is reported, not counted as a duplicate."""
    uids: list[str] = []
    doubled = 0
    found: set[str] = set()
    for path in stores:
        if not path.exists():
            continue
        store = EmbeddedStore(str(path))
        try:
            mine = [r["uid"] for r in store.query("SELECT uid FROM fengqiao.events FINAL")]
            doubled += len(mine) - len(set(mine))
            uids += sorted(set(mine))
            found |= {r["entity"] for r in store.query("SELECT entity FROM fengqiao.signals FINAL "
                                                      "WHERE rule_id = 'dispute_cluster'")}
        finally:
            store.close()
    incidents = set(sim.incidents)
    missed = len(incidents - found)
    lost = len(set(sim.ledger or ()) - set(uids)) + missed
    replayed = len(uids) - len(set(uids))
    return lost, doubled, (f"incidents found {len(incidents) - missed}/{len(incidents)}; {replayed} events replayed "
                           "into a second worker's store after the kill (one ClickHouse keeps one)")


Scenario = Callable[[bool, str], Awaitable[Outcome]]
SCENARIOS: dict[str, Scenario] = {
    "crash": crash, "store outage": store_outage, "burst": burst, "hostile input": hostile, "webhooks": webhooks,
    "broker killed": broker_killed, "broker paused": broker_paused, "workers moved": workers_moved,
}
KAFKA_ONLY = {"broker killed", "broker paused", "workers moved"}  # tansu is one process, memory only


async def run(quick: bool = False, only: list[str] | None = None, broker: str = "kafka") -> list[Outcome]:
    outcomes = []
    for name, scenario in SCENARIOS.items():
        if (only and name not in only) or (broker == "tansu" and name in KAFKA_ONLY):
            continue
        progress(f"drill: {name} (on {'three Apache Kafka nodes' if broker == 'kafka' else 'tansu'})")
        outcomes.append(await scenario(quick, broker))
        progress(f"  {outcomes[-1]}")
    return outcomes


def table(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    return [{"scenario": o.scenario, "events": o.events, "lost": o.lost, "duplicated": o.duplicated,
             "recovery (s)": "not drained" if o.recovery_s is None else f"{o.recovery_s:.1f}",
             "result": "pass" if o.passed else "FAIL", "detail": o.detail} for o in outcomes]


