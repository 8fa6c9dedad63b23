"""Steps and their runner (处理步骤): how the worker consumes, in the manner of Arroyo consumers.

Each step of the worker (validate, correlate, a sink…) is a consumer group of its own over its
topics. Its runner fetches what is there (a batch), hands it to the step, and commits the
batch's offsets only once the step has returned: by then what the batch produced is on the
broker and what it stored is in ClickHouse. Nothing is committed for a batch that failed: the
step's partitions start over from what was done, over state rebuilt from the changelog.

A rebalance waits for the batch in hand: the revoke callback takes the runner's lock, which the
loop holds from the moment a fetch returns until the batch is committed. A step that is waiting
(a sink retrying through an outage) sees ``Batch.abandoned`` and gives the batch up instead,
uncommitted. Newly assigned partitions are recovered from their changelogs before any of their
records is processed; records fetched before that are put back by a seek.

Backpressure is by pausing partitions while the step waits, never by sleeping on a full buffer.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams.runtime import kafka, state
from streams.runtime.kafka import Cluster
from streams.runtime.state import StateTable
from streams.runtime.topics import TopicSpec

log = logging.getLogger(__name__)

RETRY_MAX_SECONDS = 10.0
ENDS_EVERY = 0.5  # seconds: how old the partitions' ends a step asks for may be
MAINTAIN_ATTEMPTS = 5  # periodic work failing this many times in a row stops the step
# Where a partition stood at a revocation: its group's committed offset, its changelogs' ends.
Mark = tuple[int | None, tuple[int, ...]]
MARK_TIMEOUT = 10.0  # seconds to note where revoked partitions stand; past it they are rebuilt if given back


class Step(abc.ABC):
    """One step of the worker: what it consumes, the state it keeps, what it does with a batch."""

    name: str
    consumes: tuple[TopicSpec, ...]
    tables: tuple[StateTable, ...] = ()
    max_records = 2000  # per batch
    gather_within = 0.0  # seconds a batch may wait to fill: 0, what is there goes at once
    fetch_bytes = 4 << 20  # at most, of a partition in one fetch
    maintain_every: float | None = None  # seconds between calls of ``maintain``

    @abc.abstractmethod
    async def process(self, batch: Batch) -> None:
        """Do the batch's work and return once its outputs are confirmed; raise if they are not."""

    async def maintain(self, partitions: Partitions) -> None:
        """Periodic work between batches (sweeping expired state), on the partitions held."""

    def revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions this step no longer holds: forget what it kept about them beyond its tables."""

    def tables_of(self, topic: str) -> list[StateTable]:
        return [t for t in self.tables if t.source.name == topic]


class Timer(Protocol):
    """Where a batch's time goes (a histogram of the step's)."""

    def observe(self, amount: float) -> None: ...


class Abandoned(Exception):
    """The step gave its batch up (a rebalance or a stop came while it waited)."""


class Partitions:
    """What a step may know and do about the partitions its runner holds."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    @property
    def held(self) -> set[TopicPartition]:
        """Assigned and recovered."""
        return set(self._runner.ready)

    async def ends(self) -> dict[TopicPartition, int]:
        """The end of each partition held as the broker has it now (asked at most every
        ENDS_EVERY seconds), not as the last fetch of it saw it: after a quiet spell, that fetch
        is long past, and a backlog that came since would look like nothing."""
        return await self._runner.ends_now()

    def processed(self, tp: TopicPartition, next_offset: int) -> None:
        """Everything of ``tp`` below ``next_offset`` is done: it may be committed."""
        self._runner._uncommitted[tp] = next_offset

    async def position(self, tp: TopicPartition) -> int:
        """The next offset the consumer will fetch of ``tp``."""
        return await self._runner.consumer.position(tp)

    def pause(self, tps: set[TopicPartition]) -> set[TopicPartition]:
        """Stop fetching these (of those still assigned); returns them."""
        held = tps & self._runner.consumer.assignment()
        self._runner.consumer.pause(*held)
        return held

    def resume(self, tps: set[TopicPartition]) -> None:
        still = tps & self._runner.consumer.assignment()
        if still:
            self._runner.consumer.resume(*still)


class Batch:
    """Records fetched in one go, per partition in offset order."""

    def __init__(self, records: dict[TopicPartition, list[ConsumerRecord]], runner: Runner) -> None:
        self.records = records
        self.partitions = Partitions(runner)
        self.kept: set[TopicPartition] = set()  # partitions whose progress the step reports itself
        self._runner = runner

    def __iter__(self) -> Iterator[ConsumerRecord]:
        for records in self.records.values():
            yield from records

    def keep(self, tp: TopicPartition) -> None:
        """The step keeps some of ``tp``'s records for later: it says how far it got with
        ``Partitions.processed``, and only that much is committed."""
        self.kept.add(tp)

    @property
    def abandoned(self) -> bool:
        """True once the batch should be given up: partitions are being revoked, or the worker stops."""
        return self._runner.revoking or self._runner.stopping

    async def wait(self, seconds: float) -> None:
        """Wait while keeping the consumer's membership alive: a fetch of paused partitions
        returns nothing, and it is what tells the group this member still consumes."""
        deadline = time.monotonic() + seconds
        while not self.abandoned and (left := deadline - time.monotonic()) > 0:
            try:
                await self._runner.consumer.getmany(*self.records, timeout_ms=int(min(left, 0.2) * 1000))
            except Exception:  # a partition no longer assigned: the batch is about to be abandoned
                await asyncio.sleep(min(left, 0.2))


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.runner.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.runner.assigned(set(assigned))


class Runner:
    """Runs one step: its consumer, the loop of batches, commits, rebalances and recovery."""

    def __init__(self, step: Step, cluster: Cluster, group: str, timer: Timer,
                 failed: Callable[[str], None] = lambda kind: None) -> None:
        """``failed`` counts a failure of a ``batch`` or of the ``periodic`` work, by kind."""
        self.step = step
        self.timer, self.failed = timer, failed
        self.cluster = cluster
        session = cluster.session_timeout
        self.consumer = cluster.consumer(
            group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=cluster.fetch_max_wait_ms,
            session_timeout_ms=int(session * 1000), heartbeat_interval_ms=int(min(3.0, session / 4) * 1000),
            max_partition_fetch_bytes=step.fetch_bytes)
        self.lock = asyncio.Lock()
        self.ready: set[TopicPartition] = set()  # assigned and recovered
        self.generation = 0  # assignments completed: a fetch from before one is not processed
        self.revoking = False
        self.stopping = False
        self.joined = asyncio.Event()
        self._failures = self._maintain_failures = 0
        self._uncommitted: dict[TopicPartition, int] = {}
        self._task: asyncio.Task | None = None
        self._recovery: asyncio.Task | None = None
        self._left: dict[TopicPartition, Mark] = {}  # marks at the last revocation
        self._maintained = time.monotonic()
        self._ends: dict[TopicPartition, int] = {}
        self._ends_at = -math.inf

    async def ends_now(self) -> dict[TopicPartition, int]:
        held = sorted(self.ready)
        if time.monotonic() - self._ends_at >= ENDS_EVERY or not set(held) <= self._ends.keys():
            ends = await self.consumer.end_offsets(held) if held else {}
            if self.cluster.tansu:  # its ListOffsets falls short of the end when a producer batched records
                ends = {tp: max(end, self.consumer.highwater(tp) or 0) for tp, end in ends.items()}
            self._ends, self._ends_at = ends, time.monotonic()
        return self._ends

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([s.name for s in self.step.consumes], listener=_Rebalance(self))
        self._task = asyncio.create_task(self._loop(), name=f"step-{self.step.name}")

    @property
    def alive(self) -> bool:
        """False if the loop, or a recovery, ended for any reason but a stop."""
        if self.stopping:
            return True
        recovery_failed = self._recovery is not None and self._recovery.done() and not self._recovery.cancelled() \
            and self._recovery.exception() is not None
        return not recovery_failed and (self._task is None or not self._task.done())

    async def stop(self) -> None:
        self.stopping = True
        if self._recovery:
            self._recovery.cancel()
        await asyncio.gather(*(t for t in (self._recovery, self._task) if t), return_exceptions=True)
        async with self.lock:
            await self._commit()
        await kafka.stop(self.consumer)

    # -- the loop ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self.stopping:
            generation = self.generation
            try:
                fetched = await self._fetch()
            except Exception as exc:  # the broker is away: aiokafka reconnects, the next fetch tries again
                log.warning("%s: fetch failed (%s); retrying", self.step.name, exc)
                await asyncio.sleep(1.0)
                continue
            async with self.lock:
                batch = self._held(fetched, generation)
                if batch:
                    await self._process(batch)
                await self._commit()
                if self.step.maintain_every and time.monotonic() - self._maintained >= self.step.maintain_every:
                    self._maintained = time.monotonic()
                    await self._maintain()

    async def _maintain(self) -> None:
        """The step's periodic work. If it fails, what it changed is undone as a failed batch's
        is (its partitions start over from what was done, over state rebuilt from the
        changelog), so the work is found and done again; failing MAINTAIN_ATTEMPTS times in a
        row, the step stops, and the worker is unhealthy: never only a log line."""
        try:
            await self.step.maintain(Partitions(self))
        except Exception:
            self._maintain_failures += 1
            self.failed("periodic")
            if self._maintain_failures >= MAINTAIN_ATTEMPTS:
                log.critical("%s: periodic work failed %d times in a row; the step stops", self.step.name,
                             self._maintain_failures, exc_info=True)
                raise
            log.exception("%s: periodic work failed (%d of %d); its partitions start over", self.step.name,
                          self._maintain_failures, MAINTAIN_ATTEMPTS)
            await self._start_over()
            await asyncio.sleep(min(0.2 * 2 ** self._maintain_failures, RETRY_MAX_SECONDS))
            return
        self._maintain_failures = 0

    async def _fetch(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """What is there, up to the step's ``max_records``; a step with ``gather_within`` goes on
        fetching for that long to fill its batch (a sink: fewer, larger inserts)."""
        step = self.step
        fetched = await self.consumer.getmany(timeout_ms=200, max_records=step.max_records)
        if not step.gather_within or not fetched:
            return fetched
        count, deadline = sum(map(len, fetched.values())), time.monotonic() + step.gather_within
        while count < step.max_records and not self.stopping and (left := deadline - time.monotonic()) > 0:
            more = await self.consumer.getmany(timeout_ms=int(left * 1000) + 1, max_records=step.max_records - count)
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                count += len(records)
        return fetched

    def _held(self, fetched: dict[TopicPartition, list[ConsumerRecord]],
              generation: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The fetched records to process: those of partitions held and recovered, fetched under
        the current assignment. The others are put back, to be fetched again: a partition
        assigned a moment ago is not recovered yet, and a fetch that a rebalance overtook may
        hold records read at positions the new assignment has already moved past."""
        held = {}
        current = generation == self.generation
        for tp, records in fetched.items():
            if records and current and tp in self.ready:
                held[tp] = records
            elif records and tp in self.consumer.assignment():
                self.consumer.seek(tp, records[0].offset)
        return held

    async def _process(self, records: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        started = time.perf_counter()
        batch = Batch(records, self)
        try:
            await self.step.process(batch)
        except Abandoned:
            self._rewind(records)
            return
        except Exception:
            self._failures += 1
            self.failed("batch")
            delay = min(0.2 * 2 ** min(self._failures, 8), RETRY_MAX_SECONDS)
            log.exception("%s: a batch of %d records failed; read again in %.1fs", self.step.name,
                          sum(len(r) for r in records.values()), delay)
            try:
                await self._start_over()
            except Exception:  # positions unknown: this step cannot go on (the stack stops, to be restarted)
                log.exception("%s: its partitions could not start over; the step stops", self.step.name)
                raise
            await asyncio.sleep(delay)
            return
        self._failures = 0
        for tp, rs in records.items():
            if tp not in batch.kept:
                self._uncommitted[tp] = rs[-1].offset + 1
        spent = time.perf_counter() - started
        self.timer.observe(spent)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s done in %.1f ms", self.step.name, ", ".join(
                f"{tp.topic}/{tp.partition} {rs[0].offset}-{rs[-1].offset}" for tp, rs in records.items()),
                spent * 1000)

    async def _start_over(self) -> None:
        """After a failed batch: every partition from where it was last done, over its state as
        the changelog has it (which is never ahead of what was produced)."""
        held = sorted(self.ready)
        self.step.revoked(set(held))
        for tp in held:
            done = self._uncommitted.get(tp)
            if done is None:
                done = (await self.consumer.committed(tp))
            if done is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, done)
        self.consumer.resume(*held)
        for table in self.step.tables:
            table.discard_changes()
        await self._recover(held)

    def _rewind(self, records: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for table in self.step.tables:
            table.discard_changes()
        for tp, rs in records.items():
            if tp in self.consumer.assignment():
                self.consumer.seek(tp, rs[0].offset)

    async def _commit(self) -> None:
        assignment = self.consumer.assignment()
        offsets = {tp: o for tp, o in self._uncommitted.items() if tp in assignment}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # a rebalance or the broker: kept, committed next round
            log.warning("%s: offsets not committed yet (%s)", self.step.name, exc)
            return
        for tp, offset in offsets.items():
            if self._uncommitted.get(tp) == offset:
                del self._uncommitted[tp]

    # -- rebalances and recovery ---------------------------------------------------------------
    async def _recover(self, tps: list[TopicPartition]) -> None:
        """Rebuild the state of ``tps`` from the changelogs; while the broker cannot be read,
        try again (nothing else could be done without it)."""
        tables = [(t, tp.partition) for tp in tps for t in self.step.tables_of(tp.topic)]
        delay = 0.5
        while True:
            try:
                await state.recover(self.cluster, tables)
                break
            except state.StateRefused:
                log.critical("%s: its state cannot be read; the step stops", self.step.name, exc_info=True)
                raise
            except Exception as exc:
                if self.stopping:
                    raise
                log.warning("%s: state of %s not recovered (%s); retrying in %.1fs", self.step.name,
                            sorted(map(str, tps)), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
        self.ready.update(tps)

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: the batch in hand ends (or is given up), its offsets committed; a
        recovery still running is given up (what it rebuilt is dropped anyway). The state of the
        partitions held is kept, with a mark of where they stood (their committed offset, their
        changelogs' ends): should this member get one back untouched, it needs no rebuilding."""
        self.revoking = True
        try:
            if self._recovery and not self._recovery.done():
                self._recovery.cancel()
                await asyncio.gather(self._recovery, return_exceptions=True)
            async with self.lock:
                await self._commit()
                for tp in revoked:
                    self._uncommitted.pop(tp, None)
                held = self.ready & revoked
                self.ready.difference_update(revoked)
                self.step.revoked(revoked)
                try:
                    self._left = await asyncio.wait_for(self._marks(held), MARK_TIMEOUT)
                except Exception as exc:  # without a mark, a partition given back is rebuilt: always safe
                    log.info("%s: no mark of the partitions left (%s); they will be rebuilt", self.step.name, exc)
                    self._left = {}
        finally:
            self.revoking = False

    async def _marks(self, tps: set[TopicPartition]) -> dict[TopicPartition, Mark]:
        """Where each partition stands: its group's committed offset and the end of each of its
        changelogs. Another member that processed it, or wrote its state, moved one of them."""
        if not tps:
            return {}
        order = sorted(tps)
        committed = dict(zip(order, await asyncio.gather(*(self.consumer.committed(tp) for tp in order))))
        tables = {tp: self.step.tables_of(tp.topic) for tp in tps}
        ends = await state.changelog_ends(self.cluster, [(t, tp.partition) for tp in tps for t in tables[tp]],
                                          self.consumer)
        return {tp: (committed[tp], tuple(ends[TopicPartition(t.changelog, tp.partition)] for t in tables[tp]))
                for tp in tps}

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: the new partitions stay paused while their state is made ready, in a
        task of its own, so that this callback returns at once. (aiokafka sends no heartbeat until
        it has: a recovery longer than the session timeout inside it would cost the membership,
        and start the rebalance over.)"""
        async with self.lock:
            self.step.revoked(set(self.ready))
            self.ready.clear()
            self.generation += 1
            self.consumer.pause(*assigned)
            left, self._left = self._left, {}
            self._recovery = asyncio.create_task(self._recover_then_resume(sorted(assigned), left),
                                                 name=f"recover-{self.step.name}")

    async def _recover_then_resume(self, tps: list[TopicPartition], left: dict[TopicPartition, Mark]) -> None:
        """Keep the state of partitions given back as they were left; rebuild the others from
        their changelogs; then resume them all."""
        started = time.monotonic()
        async with self.lock:
            kept = await self._untouched([tp for tp in tps if tp in left], left)
            for table in self.step.tables:
                table.drop(set(table.partitions) - {tp.partition for tp in kept if tp.topic == table.source.name})
            rebuilt = [tp for tp in tps if tp not in kept]
            await self._recover(rebuilt)
            self.ready.update(kept)
            self.consumer.resume(*(set(tps) & self.consumer.assignment()))
        self.joined.set()
        log.info("%s holds %s: %d kept as they were, %d rebuilt from their changelogs in %.2fs", self.step.name,
                 ", ".join(f"{tp.topic}/{tp.partition}" for tp in tps), len(kept), len(rebuilt),
                 time.monotonic() - started)

    async def _untouched(self, candidates: list[TopicPartition], left: dict[TopicPartition, Mark]) -> set[TopicPartition]:
        """Of the partitions given back, those that stand where this member left them, with their
        state still held (any doubt, and the partition is rebuilt)."""
        held = [tp for tp in candidates if all(tp.partition in t.partitions for t in self.step.tables_of(tp.topic))]
        try:
            now = await self._marks(set(held))
        except Exception as exc:
            log.info("%s: cannot tell where its partitions stand (%s); rebuilding them", self.step.name, exc)
            return set()
        return {tp for tp in held if now[tp] == left[tp]}
