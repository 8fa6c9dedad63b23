"""The correction for records handed out across a seek (streams/faustfix.py, part 2): a record
whose partition was seeked after its fetch returned is not handed out (a); none is handed out
while Faust's ``perform_seek`` runs (b); and the read offset a seek set stands over the one the
drain loop sets for a record it was delivering meanwhile (c)."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from types import SimpleNamespace

import pytest

from streams import faustfix

TP = namedtuple("TP", "topic partition")
A, B = TP("grid-reports", 0), TP("grid-reports", 1)


class FakeConsumer:
    """Faust's consumer as the correction sees it: a thread holding the aiokafka fetcher, read
    offsets, and a getmany handing out one fetch's records, seeking ``A`` after ``seek_after``."""

    def __init__(self) -> None:
        self.fetcher = SimpleNamespace()
        self._thread = SimpleNamespace(_consumer=SimpleNamespace(_fetcher=self.fetcher))
        self._read_offset: dict = {}
        self.seek_after: int | None = None
        self.records: list = []

    async def fetch(self):
        async def fetch_records(thread, consumer, *args, **kwargs):
            return self.records
        faustfix._fetch_records = fetch_records
        return await faustfix._fetch_records_noted(self._thread, self._thread._consumer)

    async def getmany(self):
        for n, record in enumerate(await self.fetch()):
            if n == self.seek_after:
                faustfix._seek_to_counted(self.fetcher, A, 0)
            yield record


@pytest.fixture
def consumer(monkeypatch):
    consumer = FakeConsumer()
    monkeypatch.setattr(faustfix, "_seek_to", lambda fetcher, tp, offset: None)
    monkeypatch.setattr(faustfix, "_fetch_records", None)
    monkeypatch.setattr(faustfix, "_getmany", lambda self, timeout: self.getmany())
    return consumer


def handed_out(consumer, records, seek_after=None):
    consumer.records, consumer.seek_after = records, seek_after

    async def drain():
        return [r async for r in faustfix._getmany_in_step_with_seeks(consumer, 1.0)]
    return asyncio.run(drain())


def test_records_fetched_before_a_seek_of_their_partition_are_held_back(consumer):
    first = [(A, 10), (B, 20), (A, 11), (B, 21), (A, 12)]
    assert handed_out(consumer, first, seek_after=2) == [(A, 10), (B, 20), (B, 21)]
    # the fetch after the seek, from the new position, is handed out whole
    assert handed_out(consumer, [(A, 0), (A, 1), (B, 22)]) == [(A, 0), (A, 1), (B, 22)]


def test_no_record_is_handed_out_while_a_seek_runs_and_its_read_offsets_stand(consumer, monkeypatch):
    """The drain loop sets the read offset to each record's once delivered; a seek that ends
    during a delivery keeps the read offset it set, and no record passes until it has ended."""
    seek_may_end, events = asyncio.Event(), []

    async def perform_seek(self):
        faustfix._seek_to_counted(self.fetcher, A, 5)  # aiokafka seeks at once ...
        await seek_may_end.wait()
        self._read_offset[A] = 5  # ... and Faust sets its read offsets when that returns
        events.append("seek ended")
    monkeypatch.setattr(faustfix, "_perform_seek", perform_seek)

    async def run():
        consumer.records = [(B, 30), (B, 31), (B, 32)]
        records = faustfix._getmany_in_step_with_seeks(consumer, 1.0)
        tp, offset = await records.__anext__()
        seeking = asyncio.create_task(faustfix._perform_seek_marked(consumer))
        await asyncio.sleep(0)  # the seek starts while (B, 30) is being delivered
        consumer._read_offset[tp] = offset  # the drain loop, once it is delivered
        waiting = asyncio.create_task(records.__anext__())
        await asyncio.sleep(0.05)
        assert not waiting.done() and events == []  # (b): nothing passes while the seek runs
        seek_may_end.set()
        await seeking
        assert await waiting == (B, 31) and events == ["seek ended"]
        return records

    asyncio.run(run())
    assert consumer._read_offset == {A: 5, B: 30}


def test_a_read_offset_set_for_a_record_delivered_during_a_seek_is_put_back(consumer, monkeypatch):
    async def perform_seek(self):
        self._read_offset[A] = 3
    monkeypatch.setattr(faustfix, "_perform_seek", perform_seek)

    async def run():
        consumer.records = [(A, 40), (A, 41)]
        records = faustfix._getmany_in_step_with_seeks(consumer, 1.0)
        tp, offset = await records.__anext__()
        await faustfix._perform_seek_marked(consumer)  # ends while (A, 40) is delivered
        consumer._read_offset[tp] = offset  # what Faust's drain loop does after the delivery
        return await records.__anext__()

    asyncio.run(run())
    assert consumer._read_offset[A] == 3  # (c): the refetch from 3 is not dropped as read
