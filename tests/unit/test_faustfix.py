"""The correction for records fetched before a seek (streams/faustfix.py): a record whose
partition was seeked after its fetch returned is not handed out; records of other partitions,
and records fetched after the seek, are."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from types import SimpleNamespace

from streams import faustfix

TP = namedtuple("TP", "topic partition")
A, B = TP("grid-reports", 0), TP("grid-reports", 1)


class FakeConsumer:
    """Faust's consumer as the correction sees it: a thread holding the aiokafka fetcher, and a
    getmany handing out one fetch's records, seeking ``seek_tp`` after ``seek_after`` of them."""

    def __init__(self) -> None:
        self.fetcher = SimpleNamespace()
        self._thread = SimpleNamespace(_consumer=SimpleNamespace(_fetcher=self.fetcher))
        self.seek_after: int | None = None

    async def fetch(self, records):
        async def fetch_records(thread, consumer, *args, **kwargs):
            return records
        faustfix._fetch_records = fetch_records
        return await faustfix._fetch_records_noted(self._thread, self._thread._consumer)

    async def getmany(self, records, seek_tp=None):
        for n, record in enumerate(await self.fetch(records)):
            if n == self.seek_after:
                faustfix._seek_to_counted(self.fetcher, seek_tp, 0)
            yield record


def test_records_fetched_before_a_seek_of_their_partition_are_held_back(monkeypatch):
    consumer = FakeConsumer()
    monkeypatch.setattr(faustfix, "_seek_to", lambda fetcher, tp, offset: None)
    monkeypatch.setattr(faustfix, "_fetch_records", None)

    async def handed_out(records, seek_after=None):
        consumer.seek_after = seek_after
        monkeypatch.setattr(faustfix, "_getmany", lambda self, timeout: self.getmany(records, A))
        return [r async for r in faustfix._getmany_unseeked(consumer, 1.0)]

    first = [(A, 10), (B, 20), (A, 11), (B, 21), (A, 12)]
    assert asyncio.run(handed_out(first, seek_after=2)) == [(A, 10), (B, 20), (B, 21)]
    # the fetch after the seek, from the new position, is handed out whole
    assert asyncio.run(handed_out([(A, 0), (A, 1), (B, 22)])) == [(A, 0), (A, 1), (B, 22)]
