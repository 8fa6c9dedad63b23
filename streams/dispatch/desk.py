"""The dispatch desk (调度台): centres' actions decided, supervision timers, live notice streams.

A case opens with its handling notice on ``centre-notices``; every decided action and every
supervision sent is on ``dispatch-actions``. The desk follows both, and keeps what it made of
them on a compacted state topic of its own (``<app id>-desk-state``): each case by its signal
id, and the positions in the followed topics up to which the cases account for them. At start
it reads that state, then the followed topics from those positions on. So cases, deadlines and
the record of supervisions survive a restart, however short the followed topics' retention, and
no supervision is sent twice (replaying a record the state already holds changes nothing). One
desk runs per deployment.

Accepted or refused, every action is put on ``dispatch-actions`` before it is answered: the
audit row (留痕). The centres reach the desk over HTTP (``streams.api.centres``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from schemas.contracts.actions import ActionKind, ActionRecord, DispatchAction
from schemas.contracts.signals import CentreNotice, NoticeRole, stable_id
from schemas.reference.regions import level_of_centre
from streams import topics
from streams.dispatch.case import Case, CaseState, Supervision, centres_above
from streams.intake.identity import Pseudonymiser
from streams.metrics import Metrics
from streams.notify.routing import DEFAULT_POLICY, Policy
from streams.runtime import kafka
from streams.runtime.kafka import Cluster
from streams.runtime.topics import TopicSpec, ensure_topics

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "fengqiao"
STOP_KEEP_TIMEOUT = 10.0  # seconds to keep the state at stop
STREAM_BUFFER = 1000  # notices a slow stream client may fall behind before it is asked to reconnect
FOLLOWED = (topics.CENTRE_NOTICES, topics.DRILL_NOTICES, topics.DISPATCH_ACTIONS)


class DispatchDesk:
    def __init__(self, cluster: Cluster, pseudonymiser: Pseudonymiser, metrics: Metrics,
                 clock: Callable[[], datetime], policy: dict[Any, Policy] = DEFAULT_POLICY,
                 tick: float = 1.0, app_id: str = "fengqiao", console: str = "") -> None:
        self.cluster = cluster
        self.state = TopicSpec(f"{app_id}-desk-state", 1, "case:<signal id>, early:<signal id>, positions",
                               "the dispatch desk's cases, kept where the followed topics' retention cannot take them",
                               compacted=True)
        self.pseudonymiser = pseudonymiser
        self.metrics = metrics
        self.clock = clock
        self.policy = policy
        self.tick = tick
        self.console = console  # the console's address, for the case link of the desk's own notices
        self.cases: dict[str, Case] = {}
        self.joined: dict[str, str] = {}  # a signal joined into another's case -> that case's signal (并案)
        # Records read before their case's notice: the two topics are not ordered with each other.
        self._early: defaultdict[str, list[ActionRecord]] = defaultdict(list)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._streams: defaultdict[tuple[str, bool], set[asyncio.Queue]] = defaultdict(set)  # (centre, drill)
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task] = []
        self._positions: dict[str, int] = {}  # "topic/partition" -> the next offset the cases account for
        self._dirty: set[str] = set()  # signal ids whose case (or early records) changed since kept

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the kept state, then the followed topics from where it left them to their end,
        then follow them and run the timers."""
        await ensure_topics(self.cluster, (self.state,))
        self._producer = self.cluster.producer(acks="all")
        await self._producer.start()
        await self._load()
        self._consumer = self.cluster.consumer(enable_auto_commit=False)
        await self._consumer.start()
        tps = self.cluster.topic_partitions(*FOLLOWED)
        ends = await self.cluster.ends(tps)
        self._consumer.assign(tps)
        for tp in tps:
            at = self._positions.get(f"{tp.topic}/{tp.partition}")
            if at is None:
                await self._consumer.seek_to_beginning(tp)
            else:  # what retention took before this position is in the kept cases already
                self._consumer.seek(tp, at)
        while await self._behind(tps, ends):
            await self._read(timeout_ms=500)
        log.info("dispatch desk holds %d cases", len(self.cases))
        self._tasks = [asyncio.create_task(self._follow(), name="desk-follow"),
                       asyncio.create_task(self._supervise_forever(), name="desk-supervise")]

    async def _behind(self, tps: list[TopicPartition], ends: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        return any([await self._consumer.position(tp) < ends[tp] for tp in tps])

    async def stop(self) -> None:
        """Stop following, keep what was read (a stop may come between a read and its keeping)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._producer is not None and self._positions:
            try:
                await asyncio.wait_for(self._keep(), STOP_KEEP_TIMEOUT)
            except Exception as exc:  # the next start reads again from the positions last kept: nothing lost
                log.warning("dispatch desk could not keep its state at stop: %s", exc)
        for queues in self._streams.values():
            for q in queues:
                q.put_nowait(None)
        for client in (self._consumer, self._producer):
            if client:
                await kafka.stop(client)
        self._consumer = self._producer = None  # stopped: a second stop does nothing

    async def _follow(self) -> None:
        while True:
            try:
                await self._read(timeout_ms=1000, live=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch desk could not read its topics; retrying")
                await asyncio.sleep(1)

    async def _load(self) -> None:
        """The cases, early records and positions kept on the state topic."""
        tp = TopicPartition(self.state.name, 0)
        end = (await self.cluster.ends([tp]))[tp]
        consumer = self.cluster.consumer(enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=500, max_records=5000)).get(tp, []):
                    if record.offset < end:
                        self._restore(record.key.decode(), None if record.value is None else orjson.loads(record.value))
        finally:
            await kafka.stop(consumer)

    def _restore(self, key: str, doc: Any) -> None:
        kind, _, signal_id = key.partition(":")
        if kind == "case":
            if doc is None:
                self.cases.pop(signal_id, None)
            else:
                self.cases[signal_id] = Case.from_json(doc)
                self.joined.update({j: signal_id for j in self.cases[signal_id].joined})
        elif kind == "early":
            self._early.pop(signal_id, None)
            if doc:
                self._early[signal_id] = [ActionRecord.model_validate(r) for r in doc]
        elif kind == "positions":
            self._positions = dict(doc or {})

    async def _keep(self) -> None:
        """The cases changed since last kept, then the positions they account for, on the state topic."""
        assert self._producer is not None
        dirty, self._dirty = self._dirty, set()
        try:
            await self._send_state(dirty)
        except BaseException:  # refused, or cancelled by a stop: kept again next time (the stop keeps them)
            self._dirty |= dirty
            raise

    async def _send_state(self, dirty: set[str]) -> None:
        assert self._producer is not None
        sent = []
        for signal_id in sorted(dirty):
            case, early = self.cases.get(signal_id), self._early.get(signal_id)
            if case is not None:
                sent.append(await self._producer.send(self.state.name, orjson.dumps(case.to_json()),
                                                      key=f"case:{signal_id}".encode(), partition=0))
            sent.append(await self._producer.send(
                self.state.name, orjson.dumps([r.model_dump(mode="json") for r in early]) if early else None,
                key=f"early:{signal_id}".encode(), partition=0))
        sent.append(await self._producer.send(self.state.name, orjson.dumps(self._positions), key=b"positions",
                                              partition=0))
        await asyncio.gather(*sent)  # the positions, last on the one partition, only ever follow the cases

    async def _read(self, timeout_ms: int, live: bool = False) -> None:
        assert self._consumer is not None
        fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        for tp, records in fetched.items():
            for record in records:
                self._positions[f"{tp.topic}/{tp.partition}"] = record.offset + 1
                if tp.topic in (topics.CENTRE_NOTICES.name, topics.DRILL_NOTICES.name):
                    notice = CentreNotice.model_validate_json(record.value)
                    if not notice.drill:
                        self._on_notice(notice)  # a drill opens no case and is never supervised
                    if live:
                        self._publish(notice)
                else:
                    self._on_record(ActionRecord.model_validate_json(record.value))
        if fetched:
            await self._keep()

    # -- state from the topics --------------------------------------------------------------
    def _on_notice(self, notice: CentreNotice) -> None:
        """A handling notice opens a case, raises its level when the signal was upgraded, or says
        its signal was answered in time after all (the supervision round then closes it)."""
        if notice.role is not NoticeRole.handle:
            return
        if notice.answered_at is not None:
            answered = self.cases.get(notice.signal_id)  # its own case: a joined one closes with its own
            if answered is not None and answered.answered_at is None:
                answered.answered_at = notice.answered_at
                self._dirty.add(answered.signal_id)
            return
        policy = self.policy[notice.level]
        case = self.case_for(notice.signal_id)
        if case is None and (case := self._join(notice)) is not None:
            self._dirty.add(case.signal_id)
        if case is None or notice.level > case.level:
            self._dirty.add(case.signal_id if case is not None else notice.signal_id)
        if case is None:
            self.cases[notice.signal_id] = Case(
                signal_id=notice.signal_id, region_code=notice.region_code, handler=notice.centre_code,
                level=notice.level, rule_id=notice.rule_id, summary=notice.summary,
                ack_within=policy.ack_within, close_within=policy.close_within,
                ack_due=notice.ack_due, close_due=notice.close_due, entity_level=notice.entity_level,
                entity=notice.entity, place=notice.place, matters=list(notice.matters))
            for record in self._early.pop(notice.signal_id, []):
                self._on_record(record)
        elif notice.level > case.level:
            case.level, case.summary = notice.level, notice.summary
            case.ack_within, case.close_within = policy.ack_within, policy.close_within
            case.ack_due, case.close_due = min(case.ack_due, notice.ack_due), min(case.close_due, notice.close_due)

    def _join(self, notice: CentreNotice) -> Case | None:
        """并案: a signal resting on others (a chained rule's, an entity risk's) joins the open case
        of one of them that its centre handles, rather than opening a second case for one
        incident; the case takes the higher level (the caller raises it)."""
        for feeder in notice.joins:
            case = self.case_for(feeder)
            if case is not None and case.handler == notice.centre_code and case.state is not CaseState.closed:
                case.joined.append(notice.signal_id)
                case.matters += [m for m in notice.matters if m not in case.matters]
                self.joined[notice.signal_id] = case.signal_id
                log.info("signal %s joins the case of %s at %s", notice.signal_id, case.signal_id, case.handler)
                return case
        return None

    def case_for(self, signal_id: str) -> Case | None:
        """The case of a signal: its own, or the one it was joined into."""
        return self.cases.get(self.joined.get(signal_id, signal_id))

    def _on_record(self, record: ActionRecord) -> None:
        if record.outcome != "accepted":
            return
        case = self.case_for(record.signal_id)
        if case is None:
            if record.action_id not in {r.action_id for r in self._early[record.signal_id]}:
                self._early[record.signal_id].append(record)
                self._dirty.add(record.signal_id)
            return
        if record.action_id in case.applied:
            return
        self._dirty.add(record.signal_id)
        self._apply(case, record)

    @staticmethod
    def _apply(case: Case, record: ActionRecord) -> None:
        case.apply(record.action_id, record.kind, [d.value for d in record.departments], record.recorded_at,
                   record.centre_code, record.actor, record.note, record.to_grid)

    # -- deciding an action -----------------------------------------------------------------
    async def act(self, centre: str, body: dict[str, Any], actor: str) -> tuple[int, dict[str, Any]]:
        """Decide one action by ``actor`` of ``centre`` (who signed in, or whose key it is); it is
        on the audit topic before the answer."""
        now = self.clock()
        if "actor" in body:
            return 422, {"error": "invalid", "errors": [
                {"field": "actor", "message": "the actor is who signed in or whose key it is, never a field"}]}
        body = {"action_id": f"act-{uuid.uuid4().hex[:20]}", "occurred_at": now.isoformat(), **body,
                "centre_code": centre, "actor": actor}
        try:
            action = DispatchAction.model_validate(body)
        except ValidationError as exc:
            return 422, {"error": "invalid", "errors": [
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]}
        if action.kind is ActionKind.supervise:
            return 422, {"error": "invalid", "errors": [
                {"field": "kind", "message": "supervise is recorded by the desk, never sent by a centre"}]}
        async with self._locks[self.joined.get(action.signal_id, action.signal_id)]:
            case = self.case_for(action.signal_id)
            if case is not None and action.action_id in case.applied:
                return 200, self._view(case) | {"action_id": action.action_id, "repeated": True}
            refusal = (case.refuse(action.kind, centre, action.to_grid) if case is not None else None)
            status, reason = (404, f"没有信号{action.signal_id}") if case is None else (
                (refusal.status, refusal.reason) if refusal else (202, ""))
            record = ActionRecord(
                **action.model_dump(mode="json", exclude={"note", "schema_version"}),
                note=self.pseudonymiser.mask_text(action.note), region_code=case.region_code if case else "",
                centre_level=level_of_centre(centre), recorded_at=now,
                outcome="accepted" if status == 202 else "refused", reason=reason)
            await self._record(record)
            self.metrics.dispatch_actions.labels(action.kind.value, record.outcome).inc()
            if status != 202:
                return status, {"error": reason} | (self._view(case) if case else {})
            if action.kind is ActionKind.escalate:
                await self._hand_up(case, centre, now)
            self._apply(case, record)
            self._dirty.add(case.signal_id)
            return 202, self._view(case) | {"action_id": action.action_id}

    async def _hand_up(self, case: Case, centre: str, now: datetime) -> None:
        """提级: the centre above is told to handle the case, as a handling notice of its own."""
        assert self._producer is not None
        above = centres_above(centre)[0]
        notice = CentreNotice(
            notice_id=stable_id("esc", case.signal_id, str(case.round), above), signal_id=case.signal_id,
            signal_version=0, centre_code=above, centre_level=level_of_centre(above), role=NoticeRole.handle,
            level=case.level, rule_id=case.rule_id, region_code=case.region_code,
            summary=f"提级：{centre}提请上级承办。{case.summary}", ack_due=now + case.ack_within,
            close_due=case.close_due, created_at=now, **self._about(case))
        await self._producer.send_and_wait(topics.CENTRE_NOTICES.name, notice.model_dump_json().encode(),
                                           key=above.encode())

    def _about(self, case: Case) -> dict[str, str]:
        """What a notice of the desk's says of its case: the entity, the place, the case's page."""
        return {"entity_level": case.entity_level, "entity": case.entity, "place": case.place,
                "case_url": CentreNotice.case_link(self.console, case.signal_id)}

    async def _record(self, record: ActionRecord) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(topics.DISPATCH_ACTIONS.name, record.model_dump_json().encode(),
                                           key=record.signal_id.encode())

    @staticmethod
    def _view(case: Case) -> dict[str, Any]:
        return {"signal_id": case.signal_id, "state": case.state.value, "level": case.level.value,
                "region_code": case.region_code, "handler": case.handler, "departments": case.departments,
                "ack_due": case.ack_due.isoformat(), "close_due": case.close_due.isoformat(),
                "rule_id": case.rule_id, "summary": case.summary, "supervised_by": case.overseers(),
                "history": case.history, "matters": case.matters, "to_grid": case.to_grid, "joined": case.joined,
                "answered_at": case.answered_at.isoformat() if case.answered_at else None}

    # -- supervision (督办) --------------------------------------------------------------------
    async def _supervise_forever(self) -> None:
        while True:
            try:
                await self.supervise()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("supervision round failed; retrying")
            await asyncio.sleep(self.tick)

    async def supervise(self) -> int:
        """Close the cases answered late; send every supervision now due: the notice first, then
        the record that it was sent. Returns how many supervisions were sent."""
        now, sent = self.clock(), 0
        for case in list(self.cases.values()):
            async with self._locks[case.signal_id]:
                if case.closes_itself():
                    await self._close_answered(case, now)
                for due in case.due_supervisions(now):
                    await self._supervision(case, due, now)
                    sent += 1
        return sent

    async def _close_answered(self, case: Case, now: datetime) -> None:
        """迟到回应: the desk's own 办结 of a case whose signal was answered in time after all."""
        assert case.answered_at is not None
        record = ActionRecord(
            action_id=case.answered_close, signal_id=case.signal_id, centre_code=case.handler, kind=ActionKind.close,
            note=f"迟到回应：{case.answered_at:%m-%d %H:%M}已在期限内回应，信号提出后才送达，系统自动办结",
            actor=SYSTEM_ACTOR, occurred_at=now.isoformat(), region_code=case.region_code,
            centre_level=level_of_centre(case.handler), recorded_at=now, outcome="accepted",
            reason=f"answered late: the expected event happened at {case.answered_at.isoformat()}, before the deadline")
        await self._record(record)
        self._apply(case, record)
        self._dirty.add(case.signal_id)
        self.metrics.dispatch_actions.labels(ActionKind.close.value, "answered_late").inc()
        log.info("case %s closes itself: answered late, at %s", case.signal_id, case.answered_at.isoformat())

    async def _supervision(self, case: Case, due: Supervision, now: datetime) -> None:
        assert self._producer is not None
        what = "签收" if due.deadline == "ack" else "办结"
        notice = CentreNotice(
            notice_id=stable_id("sup", case.signal_id, due.key), signal_id=case.signal_id, signal_version=0,
            centre_code=due.centre, centre_level=level_of_centre(due.centre), role=NoticeRole.supervise,
            level=case.level, rule_id=case.rule_id, region_code=case.region_code,
            summary=f"督办：{case.handler}未在{due.due:%m-%d %H:%M}前{what}。{case.summary}",
            ack_due=now + case.ack_within, close_due=case.close_due, created_at=now, **self._about(case))
        await self._producer.send_and_wait(topics.CENTRE_NOTICES.name, notice.model_dump_json().encode(),
                                           key=due.centre.encode())
        record = ActionRecord(
            action_id=stable_id("act", case.signal_id, due.key), signal_id=case.signal_id, centre_code=due.centre,
            kind=ActionKind.supervise, note=due.key, actor=SYSTEM_ACTOR, occurred_at=now.isoformat(),
            region_code=case.region_code, centre_level=level_of_centre(due.centre), recorded_at=now,
            outcome="accepted", reason=f"{case.handler} missed the {due.deadline} deadline {due.due.isoformat()}")
        await self._record(record)
        self._apply(case, record)
        self._dirty.add(case.signal_id)
        self.metrics.supervisions.labels(due.deadline, level_of_centre(due.centre).value).inc()
        log.info("supervision of %s by %s: %s deadline missed", case.signal_id, due.centre, due.deadline)

    # -- live streams (SSE) ---------------------------------------------------------------------
    def _publish(self, notice: CentreNotice) -> None:
        """To the centre's live streams, or for a drill to its drill streams only."""
        channel = (notice.centre_code, notice.drill)
        for queue in list(self._streams.get(channel, ())):
            try:
                queue.put_nowait(notice)
            except asyncio.QueueFull:  # too far behind: end its stream, it reconnects
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)
                self._streams[channel].discard(queue)

    # -- what the centres see ------------------------------------------------------------------
    def cases_in(self, centre: str) -> list[Case]:
        """The cases in a centre's jurisdiction, open first, then by closure deadline."""
        mine = [c for c in self.cases.values() if c.region_code.startswith(centre)]
        return sorted(mine, key=lambda c: (c.state is CaseState.closed, c.close_due))

    def cases_of(self, centre: str) -> list[dict[str, Any]]:
        return [self._view(c) for c in self.cases_in(centre)]

    def case_of(self, centre: str, signal_id: str) -> Case | None:
        """The case of ``signal_id`` (or the one it was joined into) if it lies in ``centre``'s
        jurisdiction."""
        case = self.case_for(signal_id)
        return case if case is not None and case.region_code.startswith(centre) else None

    def inbox(self, centre: str) -> list[Case]:
        """督办箱: the cases handled below ``centre`` that it supervises, by hand or for a missed
        deadline, not closed, the most overdue first."""
        mine = [c for c in self.cases.values() if c.state is not CaseState.closed and c.handler != centre
                and centre in c.overseers() and c.region_code.startswith(centre)]
        return sorted(mine, key=lambda c: c.ack_due if c.state is CaseState.open else c.close_due)

    def follow(self, centre: str, drill: bool) -> asyncio.Queue:
        """A queue of the centre's notices as they come (its drill channel with ``drill``); a
        ``None`` in it ends the stream: the desk stops, or the reader fell too far behind."""
        queue: asyncio.Queue = asyncio.Queue(STREAM_BUFFER)
        self._streams[(centre, drill)].add(queue)
        return queue

    def unfollow(self, centre: str, drill: bool, queue: asyncio.Queue) -> None:
        self._streams[(centre, drill)].discard(queue)
