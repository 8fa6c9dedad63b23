"""The worker (处理流水线): validate → correlate → route, and the ClickHouse sinks.

Each step is a consumer group of its own (``<app id>-<step>``), declared once in ``STEPS`` and
run by ``streams.runtime.runner``: a batch is fetched, processed, its outputs sent through one
outbox and awaited, the state it changed written to the changelog after them, and only then
are its offsets committed. A crash at any point replays, never loses; deterministic ids make the
replay harmless. A step that waits (a sink through a ClickHouse outage) holds back only its own
topic: the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.contracts.events import BEIJING
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import RuleChange
from schemas.contracts.silences import Silence
from streams import topics
from streams.config import Settings
from streams.detection.correlator import Correlator
from streams.detection.ruleset import Rule, RuleError, load_rules, rule_files_signature, split_pack
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import Validator
from streams.metrics import Metrics
from streams.notify.routing import Policy, load_repeats
from streams.runtime import kafka
from streams.runtime.followed import FollowedTable
from streams.runtime.kafka import Cluster
from streams.runtime.outbox import Output
from streams.runtime.runner import Runner, Step
from streams.runtime.state import StateTable
from streams.runtime.topics import TopicSpec, ensure_topics, partition_lag
from streams.store.clickhouse import Store
from streams.worker import sinks
from streams.worker.correlate import Correlate, Observer, Quiet
from streams.worker.validate import Validate

log = logging.getLogger(__name__)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def definition(rule: Rule) -> str:
    """A rule as JSON, without its cases: what its fingerprint is a digest of, and its words."""
    return rule.model_dump_json(exclude={"tests"})

RULES_POLL_EVERY = 2.0  # seconds between looks at the rule files for changes
JOIN_TIMEOUT = 120.0  # seconds for every step to hold its first assignment


def now_beijing() -> datetime:
    return datetime.now(BEIJING)


@dataclass(frozen=True)
class Parts:
    """What the worker's steps are made of, each built once."""

    settings: Settings
    output: Output
    store: Store
    metrics: Metrics
    validator: Validator
    county: Correlator  # rules grouped by a county or finer, in the partitions of ``events``
    regional: Correlator  # rules grouped coarser than a county, after a repartition
    policy: dict[RiskLevel, Policy]
    observer: Observer
    clock: Callable[[], datetime]
    cluster: Cluster
    silences: FollowedTable  # 静默, read whole by every worker


def quiet_probe(parts: Parts, step: str, upstream: tuple[str, ...]) -> Callable[[], Awaitable[set[int]]] | None:
    """Live (FENGQIAO_IDLE_WATERMARK=clock): the partitions of ``step`` with nothing left to read,
    none while a step ``upstream`` has input it has not done, by what the broker has now. A
    broker that cannot say counts as not quiet (event time alone rules meanwhile)."""
    if parts.settings.idle_watermark != "clock":
        return None
    own = f"{parts.settings.app_id}-{step}"

    async def quiet() -> set[int]:
        try:
            lag = await partition_lag(parts.cluster, groups(parts.settings.app_id, (*upstream, step)))
        except Exception as exc:
            log.warning("%s: cannot tell whether its input is all read (%s); event time alone rules", step, exc)
            return set()
        if any(n for (group, _), n in lag.items() if group != own):
            return set()
        return {tp.partition for (group, tp), n in lag.items() if group == own and n == 0}

    return quiet


def _correlate(parts: Parts, regional: bool) -> Correlate:
    s = parts.settings
    quiet = quiet_probe(parts, "correlate-regional", ("validate", "correlate")) if regional else \
        quiet_probe(parts, "correlate", ("validate",))
    return Correlate(parts.regional if regional else parts.county, None if regional else parts.regional,
                     parts.output, parts.metrics, parts.observer, parts.clock, parts.policy,
                     load_repeats(s.routing_file, timedelta(seconds=s.notice_repeat_interval)), s.app_id, quiet,
                     s.console_link(), lambda: parts.silences.values.values())


def _sink(spec: TopicSpec) -> Callable[[Parts], Step]:
    return lambda p: sinks.Sink(spec, sinks.rows_of(spec, p.validator.pseudonymiser, p.clock), p.store, p.metrics,
                                p.settings.sink_batch_size, p.settings.sink_batch_seconds)


@dataclass(frozen=True)
class StepSpec:
    """One step of the worker: its name (its consumer group is ``<app id>-<name>``), the topics
    it consumes, and how it is made."""

    name: str
    consumes: tuple[TopicSpec, ...]
    make: Callable[[Parts], Step]


STEPS: tuple[StepSpec, ...] = (
    StepSpec("validate", topics.INPUTS, lambda p: Validate(
        p.output, p.validator, p.metrics, p.clock, p.settings.app_id, p.settings.duplicate_horizon,
        p.settings.input_alignment_seconds)),
    StepSpec("correlate", (topics.EVENTS,), lambda p: _correlate(p, regional=False)),
    StepSpec("correlate-regional", (topics.REGIONAL_EVENTS,), lambda p: _correlate(p, regional=True)),
    *(StepSpec(f"sink-{spec.name}", (spec,), _sink(spec)) for spec in sinks.SUNK),
)


def groups(app_id: str, steps: Iterable[str] | None = None) -> dict[str, tuple[TopicSpec, ...]]:
    """Consumer group -> the topics it consumes, for the named steps (all by default)."""
    wanted = set(steps) if steps is not None else None
    return {f"{app_id}-{s.name}": s.consumes for s in STEPS if wanted is None or s.name in wanted}


class Pipeline:
    """One worker: every step of ``STEPS``, wired to the topics and the store."""

    def __init__(self, settings: Settings, cluster: Cluster, store: Store, rules: list[Rule], metrics: Metrics,
                 pseudonymiser: Pseudonymiser, policy: dict[RiskLevel, Policy], observer: Observer | None = None,
                 clock: Callable[[], datetime] = now_beijing) -> None:
        self.settings, self.cluster, self.metrics, self.clock = settings, cluster, metrics, clock
        local, regional = split_pack(rules)
        self.correlator = Correlator(local, source_idle=settings.source_idle_seconds)
        self.regional = Correlator(regional, source_idle=settings.source_idle_seconds)
        self.producer = cluster.producer(acks="all", max_batch_size=1 << 18, max_request_size=4 << 20,
                                         request_timeout_ms=30_000)
        self.output = Output(self.producer)
        self.silences = FollowedTable(cluster, topics.SILENCES, Silence.model_validate_json)
        parts = Parts(settings, self.output, store, metrics, Validator(pseudonymiser), self.correlator,
                      self.regional, policy, observer or Quiet(), clock, cluster, self.silences)
        self.steps = [spec.make(parts) for spec in STEPS]
        assert all((s.name, s.consumes) == (spec.name, spec.consumes) for s, spec in zip(self.steps, STEPS)), \
            "each step is what its entry in STEPS declares"
        self.runners = [Runner(step, cluster, f"{settings.app_id}-{spec.name}", metrics.step_seconds.labels(step.name),
                               lambda kind, name=step.name: metrics.step_failures.labels(name, kind).inc())
                        for spec, step in zip(STEPS, self.steps)]
        self._rules_seen = rule_files_signature(settings.rules_dir)
        self._watch: asyncio.Task | None = None
        self._recording: set[asyncio.Task] = set()
        self.running = False

    @property
    def alive(self) -> bool:
        """False once a step's loop has ended while the worker was not stopping."""
        return all(r.alive for r in self.runners)

    def runner(self, step: str) -> Runner:
        return next(r for r in self.runners if r.step.name == step)

    @property
    def tables(self) -> list[StateTable]:
        return [t for step in self.steps for t in step.tables]

    async def start(self) -> None:
        changelogs = tuple(t.spec for t in self.tables)
        await ensure_topics(self.cluster, changelogs)
        await self.producer.start()
        for spec in (*topics.ALL, *changelogs):
            found, expected = len(await self.producer.partitions_for(spec.name)), self.cluster.partitions(spec)
            if found != expected:  # keys and state are placed by partition: they must agree
                raise RuntimeError(f"topic {spec.name} has {found} partitions, fengqiao expects {expected} "
                                   "(FENGQIAO_PARTITION_SCALE must be the same in every process)")
            self.output.partitions[spec.name] = found
        await self.silences.start()
        await self._record_rules([RuleChange(rule_id=r.id, change="loaded", version=r.fingerprint,
                                             changed_at=self.clock(), worker=WORKER, definition=definition(r))
                                  for r in self._pack()])
        for runner in self.runners:
            await runner.start()
        async with asyncio.timeout(JOIN_TIMEOUT):
            for runner in self.runners:
                await runner.joined.wait()
        self._watch = asyncio.create_task(self._watch_rules(), name="watch-rules")
        self.running = True

    async def stop(self) -> None:
        self.running = False
        if self._watch:
            self._watch.cancel()
        await asyncio.gather(*(r.stop() for r in self.runners), return_exceptions=True)
        await self.silences.stop()
        await kafka.stop(self.producer)

    def reload_rules(self) -> bool:
        """Load the rule pack again (SIGHUP, or a rule file changed). A pack that does not load
        is refused with its file, line and reason, and the running rules stay."""
        try:
            rules = load_rules(self.settings.rules_dir)
        except (RuleError, OSError) as exc:
            log.error("rule pack not reloaded; the running rules stay: %s", exc)
            self.metrics.rule_reloads.labels("refused").inc()
            return False
        before = {r.id: r.fingerprint for r in self._pack()}
        local, regional = split_pack(rules)
        changes = self.correlator.replace_rules(local)
        for kind, ids in self.regional.replace_rules(regional).items():
            changes[kind] = sorted(changes[kind] + ids)
        log.warning("rule pack reloaded: %s", {k: v for k, v in changes.items() if v and k != "unchanged"} or "no change")
        self.metrics.rule_reloads.labels("done").inc()
        now, by_id = self.clock(), {r.id: r for r in rules}
        recorded = [RuleChange(rule_id=i, change=kind, version=by_id[i].fingerprint if i in by_id else "",  # type: ignore[arg-type]
                               previous_version=before.get(i, ""), changed_at=now, worker=WORKER,
                               definition=definition(by_id[i]) if i in by_id else "")
                    for kind in ("added", "changed", "removed") for i in changes[kind]]
        if recorded and self.running:
            task = asyncio.get_running_loop().create_task(self._record_rules(recorded), name="record-rules")
            self._recording.add(task)
            task.add_done_callback(self._recording.discard)
        return True

    def _pack(self) -> list[Rule]:
        return [*self.correlator.rules, *self.regional.rules]

    async def _record_rules(self, changes: list[RuleChange]) -> None:
        """规则版本留痕: the rules loaded or changed, onto ``rule-changes`` (and so ClickHouse). A
        record that cannot be sent is said in the log and counted; the pack runs all the same."""
        try:
            for change in changes:
                await self.producer.send_and_wait(topics.RULE_CHANGES.name, change.model_dump_json().encode(),
                                                  key=change.rule_id.encode())
        except Exception:
            log.exception("the rule pack's versions were not recorded on %s", topics.RULE_CHANGES.name)
            self.metrics.rule_reloads.labels("unrecorded").inc()

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(RULES_POLL_EVERY)
            seen = rule_files_signature(self.settings.rules_dir)
            if seen != self._rules_seen:
                self._rules_seen = seen
                self.reload_rules()

    async def forget_expired(self) -> int:
        """Sweep remembered input ids past the duplicate horizon now, as the validate step does
        every minute; returns how many were dropped."""
        runner = self.runner("validate")
        step = runner.step
        assert isinstance(step, Validate)
        async with runner.lock:
            dropped = step.forget_expired(set(runner.ready))
            await self.output.flush(step.tables)
        return dropped
