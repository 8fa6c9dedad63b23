"""Corrections to Faust's consumer, found by fengqiao's tests and drills (``apply()``).

Each is small and names what it fixes, so that it can go the day Faust fixes it upstream.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams import kafka, topics

# -- 1. changelog ends ------------------------------------------------------------------------
async def _highwaters_from_fetch(self: Any, partitions: list[Any]) -> Any:
    """Faust asks for a changelog's end with ListOffsets before recovering a table. tansu answers
    that with the last record batch's base offset + 1, so recovery stopped short and lost the
    last writes of every partition (the restart test found it). This asks a fetch's high
    watermark instead (``topics.end_offsets``), which both tansu and Kafka report right."""
    consumer = self._ensure_consumer()
    if self.consumer.in_transaction:
        return {tp: consumer.last_stable_offset(tp) for tp in partitions}
    servers = [str(url).removeprefix("kafka://") for url in self.app.conf.broker]
    probe = kafka.consumer(bootstrap_servers=servers, enable_auto_commit=False)
    await probe.start()
    try:
        ends = await topics.end_offsets(probe, [TopicPartition(tp.topic, tp.partition) for tp in partitions])
    finally:
        await probe.stop()
    return {tp: ends[TopicPartition(tp.topic, tp.partition)] for tp in partitions}


# -- 2. records handed out across a seek ------------------------------------------------------
# After a rebalance Faust resumes the stream partitions and only then seeks them back to their
# committed offsets (``perform_seek``): aiokafka seeks in the consumer thread, and Faust sets its
# read offsets when that call returns. Its drain loop hands records to the streams meanwhile, and
# compares each offset with the read offset to find gaps (as in a compacted topic) and records
# already read. Three windows, each found by the crash drill's trace, lose records that way:
#  (a) records fetched before aiokafka's seek, handed out after it, run ahead of the rewound read
#      offset: the jump is taken for a gap, counted as acknowledged and committed, and the refetch
#      is dropped as already read (faust-streaming/faust#216, #596). Up to 180 reports lost.
#  (b) records fetched after aiokafka's seek but handed out before Faust sets its read offsets are
#      judged against the old ones: dropped as already read, or opening a false gap.
#  (c) a record being delivered while the seek lands sets the read offset to its own when its
#      delivery ends, over the seek's: the refetched records up to it are dropped, never
#      acknowledged, and the partition's commits stall behind them (with a 100 ms fetch wait).
# So: every seek of a partition is counted where aiokafka performs it and each fetch notes the
# counts when it returns; no record is handed out while a ``perform_seek`` runs (b); a record
# whose partition was seeked after its fetch is not handed out, since aiokafka reads it again
# from the new position (a); and when a ``perform_seek`` ended while a record was delivered, the
# read offset it set is put back (c).
_seek_to, _fetch_records = Fetcher.seek_to, AIOKafkaConsumerThread._fetch_records
_getmany, _perform_seek = Consumer.getmany, Consumer.perform_seek


def _attached(owner: Any, name: str, make: Callable[[], Any]) -> Any:
    """The bookkeeping fengqiao keeps on one of Faust's or aiokafka's objects, made on first use."""
    if not hasattr(owner, name):
        setattr(owner, name, make())
    return getattr(owner, name)


def _seeks(fetcher: Any) -> Counter:
    """How many times each (topic, partition) has been seeked on this aiokafka fetcher."""
    return _attached(fetcher, "_fengqiao_seeks", Counter)


def _seek_to_counted(self: Any, tp: Any, offset: int) -> Any:
    result = _seek_to(self, tp, offset)
    _seeks(self)[(tp.topic, tp.partition)] += 1
    return result


async def _fetch_records_noted(self: Any, consumer: Any, *args: Any, **kwargs: Any) -> Any:
    records = await _fetch_records(self, consumer, *args, **kwargs)
    # No await since the records were taken: the counts are those they were fetched under.
    self._fengqiao_fetched_under = dict(_seeks(consumer._fetcher))
    return records


class _SeekState:
    """A Faust consumer's seeks: whether one runs, how many ended, the read offsets they set."""

    def __init__(self) -> None:
        self.idle = asyncio.Event()
        self.idle.set()
        self.running = 0
        self.ended = 0
        self.read_offsets: dict[Any, int | None] = {}


def _seek_state(consumer: Any) -> _SeekState:
    return _attached(consumer, "_fengqiao_seek_state", _SeekState)


async def _perform_seek_marked(self: Any) -> None:
    state = _seek_state(self)
    state.running += 1
    state.idle.clear()
    try:
        await _perform_seek(self)
        state.read_offsets = dict(self._read_offset)
        state.ended += 1
    finally:
        state.running -= 1
        if not state.running:
            state.idle.set()


async def _getmany_in_step_with_seeks(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    thread, state = getattr(self, "_thread", None), _seek_state(self)
    async for tp, message in _getmany(self, timeout):
        if thread is None or thread._consumer is None:
            yield tp, message
            continue
        await state.idle.wait()  # (b)
        key, seeks = (tp.topic, tp.partition), _seeks(thread._consumer._fetcher)
        if seeks[key] != getattr(thread, "_fengqiao_fetched_under", {}).get(key, 0):
            continue  # (a): read again from the new position
        ended = state.ended
        yield tp, message  # the drain loop delivers it, then sets the read offset to its offset
        if state.ended != ended and tp in state.read_offsets:
            self._read_offset[tp] = state.read_offsets[tp]  # (c)


# -- 3. the worker's fetch wait ---------------------------------------------------------------
# Faust creates its consumer with fetch_max_wait_ms=1500, with no setting for it. The embedded
# broker holds a fetch that long however little it has, so each hop (input, events, notices)
# could add up to 1.5 s: at 200 events/s the notice p50 was 2.0 s and the p99 3.5 s, and with
# 100 ms 0.21 s and 0.40 s (``fengqiao bench --loads --rates 200``, same minute). A Kafka broker
# answers as soon as a record arrives either way. FENGQIAO_KAFKA_FETCH_MAX_WAIT_MS sets it.
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def _create_worker_consumer_waiting(self: Any, transport: Any) -> Any:
    consumer = _create_worker_consumer(self, transport)
    wait = getattr(self.app, "fengqiao_fetch_max_wait_ms", None)
    if wait is not None:
        consumer._fetch_max_wait_ms = wait  # read when the consumer starts its fetcher
    return consumer


def apply() -> None:
    """Install the corrections; the pipeline calls it before creating its Faust app."""
    AIOKafkaConsumerThread._highwaters = _highwaters_from_fetch
    Fetcher.seek_to = _seek_to_counted
    AIOKafkaConsumerThread._fetch_records = _fetch_records_noted
    Consumer.getmany = _getmany_in_step_with_seeks
    Consumer.perform_seek = _perform_seek_marked
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer_waiting
