"""The composition root (组装): the whole process built from ``Settings``, in one place.

``build(settings)`` makes a ``Stack``: broker (unless Kafka is configured, the embedded tansu or,
with ``FENGQIAO_BROKER=kafka``, a local Apache Kafka),
topics, store, worker, gateway and dispatch desk, webhooks, metrics. The Kafka clients, the
pseudonymiser and the routing policy are made here once and handed to the parts that need them;
nothing below reads the environment. ``Stack`` starts the parts in that order and stops them in
reverse, so nothing is left behind: the embedded broker is a child that is terminated and waited
for (and that the kernel kills should this process die first). A deployment runs the roles
apart: the worker (``fengqiao worker``: the pipeline's steps, and webhooks when configured) and
the gateway (``fengqiao gateway``: publishers' gateway and the dispatch desk); ``fengqiao up``
runs both with the embedded broker and chdb.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.contracts.silences import Silence
from schemas.reference.matters import use_catalogue
from schemas.reference.regions import use_pack
from streams import topics
from streams.api.centres import CentreRoutes
from streams.api.console import CentreConsole
from streams.api.gateway import Gateway
from streams.api.keys import KeyStore
from streams.api.monitor import Monitor
from streams.api.operators import OperatorStore
from streams.api.silences import SilenceRoutes
from streams.config import Settings
from streams.detection.ruleset import Rule, load_rules
from streams.dispatch.desk import DispatchDesk
from streams.intake.identity import Pseudonymiser
from streams.metrics import Metrics
from streams.notify.routing import load_policy
from streams.notify.webhooks import Retry, load_hooks
from streams.runtime.broker import EmbeddedBroker
from streams.runtime.followed import FollowedTable
from streams.runtime.kafka import Cluster
from streams.runtime.kraft import KRaftCluster
from streams.runtime.topics import drained, ensure_topics, group_lag, partition_lag
from streams.store.clickhouse import Store, open_store
from streams.worker.correlate import Observer
from streams.worker.notifier import Notifier
from streams.worker.pipeline import Pipeline, groups, now_beijing

log = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0  # seconds for each part to stop, e.g. when the broker is already gone
STOP_BUDGET = 30.0  # seconds for all of them: a supervisor's grace period is not the sum of the parts'
LAG_EVERY = 10.0  # seconds between measurements of the consumer lag


def build(settings: Settings, observer: Observer | None = None, rules: list[Rule] | None = None,
          gateway: bool = True, pipeline: bool = True, clock: Callable[[], datetime] = now_beijing) -> Stack:
    """The process for ``settings``: the worker and/or the gateway, not started yet, on the
    settings' region pack."""
    use_pack(settings.region_pack_path(), settings.grid_register_path())
    use_catalogue(settings.matters_file)
    return Stack(settings, observer, rules, gateway, pipeline, clock)


def pseudonymiser(settings: Settings) -> Pseudonymiser:
    return Pseudonymiser(settings.pseudonym_key.get_secret_value().encode())


def worker_pipeline(settings: Settings, cluster: Cluster, store: Store, rules: list[Rule], metrics: Metrics,
                    observer: Observer | None = None) -> Pipeline:
    """A worker alone, with no gateway (the benchmarks'), its parts made as the stack makes them."""
    return Pipeline(settings, cluster, store, rules, metrics, pseudonymiser(settings), load_policy(settings.routing_file),
                    observer)


class Stack:
    def __init__(self, settings: Settings, observer: Observer | None = None,
                 rules: list[Rule] | None = None, gateway: bool = True, pipeline: bool = True,
                 clock: Callable[[], datetime] = now_beijing) -> None:
        self.settings = settings
        self.clock = clock
        self.observer = observer
        self.rules = rules if rules is not None else load_rules(settings.rules_dir)
        self.metrics = Metrics()
        self.pseudonymiser = pseudonymiser(settings)
        self.policy = load_policy(settings.routing_file)
        self.cluster: Cluster | None = None if settings.embedded_kafka else Cluster.of(settings)
        self.broker: EmbeddedBroker | KRaftCluster | None = None  # the broker this process started, if any
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self.gateway: Any = None
        self.console: CentreConsole | None = None
        self.desk: DispatchDesk | None = None
        self.notifier: Notifier | None = None
        self.producer: AIOKafkaProducer | None = None
        self.monitor: Monitor | None = None
        self.silences: FollowedTable | None = None  # the gateway's book of silences (静默)
        self.metrics_port = settings.metrics_port
        self.with_gateway = gateway
        self.with_pipeline = pipeline
        self.ready = False
        self._lag_task: asyncio.Task | None = None

    @property
    def bootstrap_servers(self) -> str:
        return self.cluster.bootstrap_servers if self.cluster else ""

    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if self.cluster is None:  # a broker of its own: Apache Kafka kept under the data dir, or tansu
            self.broker = KRaftCluster(s.data_dir / "kafka") if s.broker == "kafka" else \
                EmbeddedBroker(log_path=s.data_dir / "broker.log")
            self.broker.start()  # on this thread: the death signal of its processes is tied to it
            self.cluster = Cluster.of(s, self.broker.bootstrap_servers)
        cluster = self.cluster
        await ensure_topics(cluster, topics.ALL)
        self.monitor = Monitor(self.metrics.registry, s.metrics_host, s.metrics_port, self.alive, lambda: self.ready)
        await self.monitor.start()
        self.metrics_port = self.monitor.port
        if self.with_pipeline:
            self.store = await asyncio.to_thread(open_store, s)
            self.pipeline = Pipeline(s, cluster, self.store, self.rules, self.metrics, self.pseudonymiser,
                                     self.policy, self.observer, clock=self.clock)
            await self.pipeline.start()
        if s.webhooks_file:
            self.notifier = Notifier(cluster, load_hooks(s.webhooks_file), self.metrics,
                                     f"{s.app_id}-webhooks", Retry(attempts=s.webhook_attempts))
            await self.notifier.start()
        if self.with_gateway:
            keys = KeyStore(s.keys_path)
            self.desk = DispatchDesk(cluster, self.pseudonymiser, self.metrics, self.clock, self.policy,
                                     tick=s.supervision_tick, app_id=s.app_id, console=s.console_link())
            await self.desk.start()
            self.producer = cluster.producer(acks="all")
            await self.producer.start()
            if self.store is None and not s.embedded_clickhouse:  # the console reads case files from the server
                self.store = await asyncio.to_thread(open_store, s)
            self.console = CentreConsole(self.desk, OperatorStore(s.operators_path), self.store,
                                         s.console_base(s.gateway_port), {r.id: r.name for r in self.rules})
            self.silences = FollowedTable(cluster, topics.SILENCES, Silence.model_validate_json)
            await self.silences.start()
            centres = CentreRoutes(self.desk, keys)
            silences = SilenceRoutes(self.silences, self.producer, centres.holder, [r.id for r in self.rules], self.clock)
            self.gateway = Gateway(self.producer, keys, s.gateway_host, s.gateway_port,
                                   [*centres.routes(), *silences.routes(), *self.console.routes()],
                                   {**CentreRoutes.openapi(), **silences.openapi(), **CentreConsole.openapi()})
            await self.gateway.start()
            if s.gateway_port == 0 and not s.console_url:  # the real port is known only now
                self.console.base = s.console_base(self.gateway.port)
        if self.with_pipeline:
            self._lag_task = asyncio.create_task(self._measure_lag(), name="consumer-lag")
        self.ready = True

    async def _measure_lag(self) -> None:
        """Each step's lag per topic and partition, for the metrics, every few seconds."""
        prefix = f"{self.settings.app_id}-"
        while True:
            try:
                assert self.cluster is not None
                lag = await partition_lag(self.cluster, groups(self.settings.app_id))
                for (group, tp), value in lag.items():
                    self.metrics.consumer_lag.labels(group.removeprefix(prefix), tp.topic, str(tp.partition)).set(value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is busy or gone: the next round tries again
                log.debug("consumer lag not measured: %s", exc)
            await asyncio.sleep(LAG_EVERY)

    def alive(self) -> bool:
        """False once the embedded broker, without which nothing works, has died, or a step of
        the worker has stopped working."""
        return (self.broker is None or self.broker.alive) and (self.pipeline is None or self.pipeline.alive)

    async def stop(self) -> None:
        """Stop in reverse order; each part is stopped even if another fails or hangs."""
        self.ready = False
        if self._lag_task:
            self._lag_task.cancel()
            await asyncio.gather(self._lag_task, return_exceptions=True)
        steps = [
            ("gateway", self.gateway and self.gateway.stop),
            ("dispatch desk", self.desk and self.desk.stop),
            ("silences", self.silences and self.silences.stop),
            ("webhooks", self.notifier and self.notifier.stop),
            ("producer", self.producer and self.producer.stop),
            ("worker", self.pipeline and self.pipeline.stop),
        ]
        loop = asyncio.get_running_loop()
        budget_ends = loop.time() + STOP_BUDGET
        for name, stop in steps:
            if stop:
                allowed = max(1.0, min(STOP_TIMEOUT, budget_ends - loop.time()))
                try:
                    await asyncio.wait_for(stop(), allowed)
                except asyncio.TimeoutError:
                    log.error("stopping the %s took over %.0fs; going on without it", name, allowed)
                except Exception:
                    log.exception("stopping the %s failed", name)
        if self.monitor:
            await self.monitor.stop()
        if self.store:
            await asyncio.to_thread(self.store.close)
        if self.broker:
            await asyncio.to_thread(self.broker.stop)

    async def __aenter__(self) -> Stack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def watch(self, stop: asyncio.Event) -> None:
        """Set ``stop`` if the embedded broker dies, or a step of the worker stops working: the
        stack cannot do its work without them, and a supervisor restarts a process that exits."""
        while not stop.is_set():
            if self.broker and not self.broker.alive:
                log.error("the broker this process started exited (see its log in the data dir); stopping")
                stop.set()
            elif self.pipeline and not self.pipeline.alive:
                log.error("a step of the worker stopped working (see above); stopping")
                stop.set()
            await asyncio.sleep(0.5)

    async def lag(self) -> int:
        """Messages on the consumed topics that the worker's steps have not yet committed."""
        assert self.cluster is not None
        return await group_lag(self.cluster, groups(self.settings.app_id))

    async def drain(self, timeout: float = 60.0) -> bool:
        """Wait until every step has committed everything on its topics (sinks included)."""
        assert self.cluster is not None
        return await drained(self.cluster, groups(self.settings.app_id), timeout) is not None

    def summary(self) -> dict[str, Any]:
        m = self.metrics
        assert self.store is not None
        return {
            "events_in": m.total(m.events_in),
            "events_valid": m.total(m.events_valid),
            "events_dlq": m.total(m.events_dead_lettered),
            "events_duplicate": m.total(m.duplicates),
            "signals": m.total(m.signals, kind="new"),
            "signal_updates": m.total(m.signals, kind="update"),
            "notices": sum(m.total(m.notices, channel=t.name) for t in (topics.CENTRE_NOTICES, topics.DRILL_NOTICES)),
            "clickhouse_rows": {t: self.store.count(t) for t in self.store.tables()},
        }
