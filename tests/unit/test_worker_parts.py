"""The worker's parts that need no broker: state tables, the outbox's partitioning, alignment."""

from __future__ import annotations

import math

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from streams import topics
from streams.runtime.alignment import Alignment
from streams.runtime.outbox import partition_of
from streams.runtime.state import StateTable


def test_a_state_table_hands_each_changed_key_once_with_its_last_value():
    table = StateTable("seen-grid-reports", topics.GRID_REPORTS, "fq")
    assert table.changelog == "fq-seen-grid-reports-changelog"
    assert table.spec.base_partitions == topics.GRID_REPORTS.base_partitions and table.spec.compacted
    table.apply(0, b"a", b"1")  # recovered
    table.apply(1, b"b", b"2")
    table.put(0, "a", 5)
    table.put(0, "a", 6)
    table.put(0, "c", {"t": 1})
    table.delete(1, "b")
    table.delete(1, "never-there")  # nothing to forget: no tombstone
    assert sorted(table.changes()) == [(0, b"a", b"6"), (0, b"c", b'{"t":1}'), (1, b"b", None)]
    assert list(table.changes()) == []  # handed once
    table.put(1, "d", 1)
    table.drop({1})  # revoked before the flush: its new owner recovers without it
    assert list(table.changes()) == [] and table.partitions == {0: {"a": 6, "c": {"t": 1}}}


def test_recovering_a_changelog_gives_back_the_state_that_was_flushed():
    written = StateTable("windows", topics.EVENTS, "fq")
    written.partitions = {3: {}}
    changelog = []
    for key, value in (("x", [1, 2]), ("y", {"n": 1}), ("x", [3]), ("y", None)):  # one batch each
        if value is None:
            written.delete(3, key)
        else:
            written.put(3, key, value)
        changelog += written.changes()
    recovered = StateTable("windows", topics.EVENTS, "fq")
    for partition, key, value in changelog:
        recovered.apply(partition, key, value)
    assert recovered.partitions == written.partitions == {3: {"x": [3]}}


def test_keys_land_where_any_kafka_client_puts_them():
    ours, theirs = DefaultPartitioner(), list(range(8))
    for key in (b"210202", b"210203", b"2102", b"police", "市".encode()):
        assert partition_of(key, 8) == ours(key, theirs, theirs)


class Partitions:
    """What alignment sees of a runner: held partitions, what the broker has, what is paused."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.now, self.paused = ends, set()
        self.held = set(ends)

    async def ends(self) -> dict[TopicPartition, int]:
        return dict(self.now)

    async def position(self, tp: TopicPartition) -> int:
        return 0

    def pause(self, tps: set[TopicPartition]) -> set[TopicPartition]:
        self.paused |= tps
        return tps

    def resume(self, tps: set[TopicPartition]) -> None:
        self.paused -= tps


class Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def items(times: list[float | None], first: int = 0) -> list[tuple[Record, str, float | None]]:
    return [(Record(first + i), f"r{first + i}", t) for i, t in enumerate(times)]


GRID, ALERTS = TopicPartition("grid-reports", 0), TopicPartition("dept-alerts", 0)
MIN = 60_000


async def test_a_backlog_goes_in_event_time_order_and_the_partition_ahead_waits():
    parts = Partitions({GRID: 100, ALERTS: 3})
    align = Alignment(within_s=300)
    # a whole backlog of grid reports fetched first, its alerts not yet: the grid partition waits
    going, done = await align.release(parts, {GRID: items([0, 10 * MIN, 20 * MIN, 30 * MIN])})
    assert going == [] and done == {GRID: 0} and parts.paused == {GRID}
    # the alerts come, all of them: merged in time order up to what the grid partition, which has
    # more to read, has reached (30 min) plus 5 minutes; the alert at 40 min waits for the grid
    going, done = await align.release(parts, {ALERTS: items([MIN, 12 * MIN, 40 * MIN])})
    assert [t for *_, t in going] == [0, MIN, 10 * MIN, 12 * MIN, 20 * MIN, 30 * MIN]
    assert done == {GRID: 4, ALERTS: 2} and parts.paused == {ALERTS}


async def test_a_partition_with_nothing_more_to_read_holds_no_one_back():
    parts = Partitions({GRID: 4, ALERTS: 0})  # alerts all read: live, not a backlog
    going, done = await Alignment(within_s=300).release(parts, {GRID: items([0, 10 * MIN, 20 * MIN, 30 * MIN])})
    assert len(going) == 4 and done == {GRID: 4} and not parts.paused


async def test_what_waits_goes_once_the_others_catch_up_and_a_dead_letter_keeps_its_place():
    parts = Partitions({GRID: 100, ALERTS: 100})
    align = Alignment(within_s=300)
    going, done = await align.release(parts, {GRID: items([0, None, 60 * MIN, 61 * MIN]),
                                              ALERTS: items([MIN, 2 * MIN])})
    # the least front is the alerts' 2 min: + 5 min lets go what is up to 7 min, in time order,
    # the dead letter (no time) first; the grid partition's 60 min waits, paused, uncommitted
    assert [name for _, name, _ in going] == ["r1", "r0", "r0", "r1"] and done == {GRID: 2, ALERTS: 2}
    assert parts.paused == {GRID}
    parts.now[ALERTS] = 2  # nothing more to read of the alerts: nothing holds the grid back
    going, done = await align.release(parts, {})
    assert [t for *_, t in going] == [60 * MIN, 61 * MIN] and done == {GRID: 4} and not parts.paused


async def test_alignment_off_lets_everything_go():
    parts = Partitions({GRID: 100, ALERTS: 100})
    going, done = await Alignment(within_s=0).release(parts, {GRID: items([math.inf - 1, 0])})
    assert len(going) == 2 and done == {GRID: 2}
