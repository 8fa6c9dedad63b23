"""Corrections to Faust's consumer, found by fengqiao's tests and drills (``apply()``).

Each is small and names what it fixes, so that it can go the day Faust fixes it upstream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
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


# -- 2. records fetched before a seek ---------------------------------------------------------
# After a rebalance Faust resumes the stream partitions and only then seeks them back to their
# committed offsets. Records fetched in between, still being handed out when the seek lands, run
# ahead of the rewound read offset: Faust takes the jump for a gap (as in a compacted topic),
# counts the offsets in it as acknowledged, then drops the same records when the refetch from
# the committed offset brings them, as already read. They were committed and never processed:
# the crash drill lost up to 180 reports this way (faust-streaming/faust#216 and #596 describe
# the race). Here every seek of a partition is counted where aiokafka performs it, each fetch
# notes the counts when it returns, and a record whose partition was seeked after its fetch
# returned is not handed out: aiokafka reads it again from the new position, in order.
_seek_to, _fetch_records, _getmany = Fetcher.seek_to, AIOKafkaConsumerThread._fetch_records, Consumer.getmany


def _seeks(fetcher: Any) -> Counter:
    """How many times each (topic, partition) has been seeked on this aiokafka fetcher."""
    try:
        return fetcher._fengqiao_seeks
    except AttributeError:
        fetcher._fengqiao_seeks = Counter()
        return fetcher._fengqiao_seeks


def _seek_to_counted(self: Any, tp: Any, offset: int) -> Any:
    result = _seek_to(self, tp, offset)
    _seeks(self)[(tp.topic, tp.partition)] += 1
    return result


async def _fetch_records_noted(self: Any, consumer: Any, *args: Any, **kwargs: Any) -> Any:
    records = await _fetch_records(self, consumer, *args, **kwargs)
    # No await since the records were taken: the counts are those they were fetched under.
    self._fengqiao_fetched_under = dict(_seeks(consumer._fetcher))
    return records


async def _getmany_unseeked(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    thread = getattr(self, "_thread", None)
    async for tp, message in _getmany(self, timeout):
        if thread is not None and thread._consumer is not None:
            key = (tp.topic, tp.partition)
            if _seeks(thread._consumer._fetcher)[key] != getattr(thread, "_fengqiao_fetched_under", {}).get(key, 0):
                continue  # fetched before a seek of its partition: read again from the new position
        yield tp, message


def apply() -> None:
    """Install the corrections; the pipeline calls it before creating its Faust app."""
    AIOKafkaConsumerThread._highwaters = _highwaters_from_fetch
    Fetcher.seek_to = _seek_to_counted
    AIOKafkaConsumerThread._fetch_records = _fetch_records_noted
    Consumer.getmany = _getmany_unseeked
