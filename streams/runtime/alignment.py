"""Event-time alignment of the inputs (事件时间对齐): no input partition runs far ahead of another.

Rules that join sources (a registration, then a warning, then no visit) read their events in
the order the validate step emits them. Live, every source is near the present and the order is
right. But a backlog (a worker back from an outage, a department publishing a day at once, a
recorded week replayed) is fetched a partition at a time, and one partition's week could come
before another's first hour. So the validate step emits its records in event-time order, and
only up to a bound: the least event time reached by any input partition with more to read, plus
``within``. A partition's records beyond the bound wait here, uncommitted, and the partition is
paused until the others catch up (as Flink's watermark alignment does). A partition with nothing
more to read never holds the others back, so live inputs are never waited for. What a partition
has to read is what the broker has now, not what its last fetch saw: a burst after a quiet spell
is a backlog from its first record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition

from streams.runtime.runner import Partitions

# (record, what it became, its event time in ms or None: a dead letter goes whenever its turn comes)
Item = tuple[Any, Any, float | None]


class Alignment:
    def __init__(self, within_s: float) -> None:
        self.within_ms = within_s * 1000
        self.waiting: dict[TopicPartition, list[Item]] = {}  # per paused partition, in offset order
        self.reached: dict[TopicPartition, float] = {}  # the latest event time let go
        self.next: dict[TopicPartition, int] = {}  # the offset after the last record fetched

    async def release(self, partitions: Partitions, fetched: dict[TopicPartition, list[Item]]
                      ) -> tuple[list[Item], dict[TopicPartition, int]]:
        """What may go now, in event-time order, of ``fetched`` and of what waits; and per partition
        touched, the offset below which everything has gone (what may be committed)."""
        hand = {**self.waiting, **fetched}
        self.waiting = {}
        for tp, items in fetched.items():
            self.next[tp] = items[-1][0].offset + 1
        bound = await self._bound(partitions, hand)
        going: list[Item] = []
        done = {}
        for tp, items in hand.items():
            n = next((i for i, (_, _, t) in enumerate(items) if t is not None and t > bound), len(items))
            going += items[:n]
            self.reached[tp] = max([t for _, _, t in items[:n] if t is not None], default=self.reached.get(tp, -math.inf))
            if n < len(items):
                self.waiting[tp] = items[n:]
                done[tp] = items[n][0].offset
            else:
                done[tp] = items[-1][0].offset + 1
        partitions.pause(set(self.waiting))
        partitions.resume(set(hand) - set(self.waiting))
        going.sort(key=lambda item: -math.inf if item[2] is None else item[2])  # stable: offsets within a time
        return going, done

    async def _bound(self, partitions: Partitions, hand: dict[TopicPartition, list[Item]]) -> float:
        """The least event time reached by a partition with more to read, plus ``within``. One
        whose time is not known yet (nothing of it read) holds the others until it is read."""
        if not self.within_ms:
            return math.inf
        fronts = []
        ends = await partitions.ends()
        for tp in partitions.held:
            end = self.next.get(tp)
            if end is None:
                end = await partitions.position(tp)
            if ends.get(tp, 0) <= end:
                continue  # all read, by what the broker has now: what comes next is live
            times = [t for _, _, t in hand.get(tp, []) if t is not None]
            fronts.append(max(times, default=self.reached.get(tp, -math.inf)))
        return min(fronts, default=math.inf) + self.within_ms

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            for held in (self.waiting, self.reached, self.next):
                held.pop(tp, None)
