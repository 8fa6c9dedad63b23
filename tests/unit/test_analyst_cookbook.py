"""Every query of docs/analyst-queries.md, and the evaluation views (考评) the dashboards read,
run against the seeded week and give its known answers."""

import re
from pathlib import Path

import pytest

from tests.seed import A1, A2, B1, X, Y, Z, person, seeded_store

COOKBOOK = Path(__file__).parents[2] / "docs" / "analyst-queries.md"
QUERIES = {int(m[1]): (m[2], m[3]) for m in re.finditer(
    r"^## (\d+)\. (.*?)\n.*?```sql\n(.*?)```", COOKBOOK.read_text("utf-8"), re.S | re.M)}
PARAMS = {"since": "2026-11-16 00:00:00", "now": "2026-11-20 15:00:00"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    store, world = seeded_store(tmp_path_factory.mktemp("cookbook"))
    yield store, world
    store.close()


def answer(seeded, n: int, **params) -> list[tuple]:
    store, _ = seeded
    return [tuple(r.values()) for r in store.query(QUERIES[n][1], PARAMS | params)]


def test_the_cookbook_has_at_least_twelve_questions():
    assert len(QUERIES) >= 12 and sorted(QUERIES) == list(range(1, len(QUERIES) + 1))


def test_1_hot_spots_by_street(seeded):
    assert answer(seeded, 1) == [("210202001", "大连市中山区海军广场街道", 6), ("210203001", "大连市西岗区香炉礁街道", 3),
                                 ("210202005", "大连市中山区人民路街道", 2)]


def test_2_matter_groups_by_district(seeded):
    assert answer(seeded, 2) == [("210202", "dispute", 5), ("210202", "hazard", 2), ("210202", "police", 1),
                                 ("210203", "dispute", 3)]


def test_3_parties_in_repeated_disputes(seeded):
    got = [(r[0], r[1], r[2]) for r in answer(seeded, 3)]
    assert got == [(person(X, A1), 5, 1), (person(Y, A1), 3, 1), (person(Z, B1), 2, 1)]
    assert [r[0] for r in answer(seeded, 3, since="2026-10-01 00:00:00")][0] == person(X, A1)  # 6 with last month's
    assert answer(seeded, 3, since="2026-10-01 00:00:00")[0][1] == 6


def test_17_everything_about_one_person(seeded):
    """X: last month's dispute and three of Thursday's by ID number, two by mobile alone, and the
    110 call by both (the event names him by the stronger, the ID number)."""
    got = answer(seeded, 17, person=person(X, A1))
    assert [(r[1], r[2], r[4]) for r in got] == [("grid_report", "dispute.family", "id_number")] + [
        ("grid_report", "dispute.neighbour", "id_number")] * 3 + [("grid_report", "dispute.neighbour", "mobile")] * 2 + [
        ("dept_alert", "police.police_call_110", "id_number")]
    assert answer(seeded, 17, person=person(Z, B1))[0][3] == B1


def test_4_signal_trend(seeded):
    assert [(str(d), r, lv, n) for d, r, lv, n in answer(seeded, 4)] == [
        ("2026-11-17", "dispute_cluster", "yellow", 1), ("2026-11-18", "fire_gas_hazard", "orange", 1),
        ("2026-11-19", "broadcast_coverage_gap", "orange", 1), ("2026-11-19", "dispute_cluster", "orange", 1),
        ("2026-11-19", "dispute_cluster", "yellow", 1)]


def test_5_open_signals(seeded):
    assert answer(seeded, 5) == [("210202", "orange", 1), ("210203", "orange", 1)]


def test_6_overdue_by_department(seeded):
    assert [r[:2] for r in answer(seeded, 6)] == [("(未分办)", 1), ("civil_affairs", 1), ("police", 1)]
    assert answer(seeded, 6, now="2026-11-20 13:00:00") == []  # an hour earlier nothing was overdue yet


def test_7_acknowledgement_latency(seeded):
    assert answer(seeded, 7) == [(A1, 1, 10, 10), (A2, 1, 40, 40), (B1, 1, 60, 60)]


def test_8_on_time_closure(seeded):
    assert answer(seeded, 8) == [("210202", 1, 1, 1), ("210203", 1, 0, 0)]


def test_9_reopen_rate(seeded):
    assert answer(seeded, 9) == [("210202", 2, 1, 1), ("210203", 1, 0, 0)]


def test_10_evidence_of_a_signal(seeded):
    _, world = seeded
    a1 = world["signals"]["a1"][-1]
    rows = answer(seeded, 10, signal=a1.signal_id)
    assert [r[2] for r in rows] == ["dispute.neighbour"] * 5 and {r[4] for r in rows} == {"5号楼"}
    assert answer(seeded, 10, signal="sig-unknown") == []


def test_11_open_broadcast_coverage_gaps(seeded):
    _, world = seeded
    assert [r[:3] for r in answer(seeded, 11)] == [
        (world["signals"]["gap"][0].signal_id, "大连市西岗区香炉礁街道工人村社区居委会", "orange")]


def test_12_hazards_reported_again(seeded):
    assert [r[:4] for r in answer(seeded, 12)] == [(A2, "8号楼楼道", "hazard.fire", 2)]


def test_13_refused_actions(seeded):
    assert [r[:3] for r in answer(seeded, 13)] == [("210203", "close", 1)]


def test_14_dead_letters(seeded):
    assert [r[:4] for r in answer(seeded, 14)] == [("grid-reports", "invalid_json", "", 1)]


def test_15_drills_kept_apart(seeded):
    assert answer(seeded, 15) == [("dispute_cluster", "blue", 1)]


def test_16_evaluation_of_the_handling_centres(seeded):
    assert [(r[0], r[1], r[6]) for r in answer(seeded, 16)] == [
        (A1, "大连市中山区海军广场街道春德社区居委会", 1), (B1, "大连市西岗区香炉礁街道工人村社区居委会", 1),
        (A2, "大连市中山区人民路街道福寿社区居委会", 0)]


def evaluation(seeded, view: str) -> dict[str, tuple]:
    store, _ = seeded
    return {r.pop(next(iter(r))): tuple(r.values()) for r in store.query(f"SELECT * FROM fengqiao.{view}")}


def test_evaluation_by_handling_centre(seeded):
    """Overdue counts against the real clock, which is past the seeded week for good."""
    # signals, acknowledged, ack p50, p90 (min), closed, on time, on-time rate, overdue, reopened, reopen rate
    assert evaluation(seeded, "evaluation_by_centre") == {
        A1: ("community", 1, 1, 10, 10, 0, 0, None, 1, 0, None),  # orange, acknowledged, past its closure
        A2: ("community", 1, 1, 40, 40, 1, 1, 1, 0, 1, 1),  # closed in 20 of its 24 hours, then reopened
        B1: ("community", 2, 1, 60, 60, 1, 0, 0, 1, 0, 0),  # closed after 75 of 72 hours; the gap untouched
    }


def test_evaluation_by_department(seeded):
    # signals, answered, feedback p50, p90 (min), closed, on time, on-time rate, overdue, reopened, reopen rate
    assert evaluation(seeded, "evaluation_by_department") == {
        "police": (1, 1, 100, 100, 0, 0, None, 1, 0, None),  # feedback 100 min after its assignment
        "civil_affairs": (1, 1, 100, 100, 0, 0, None, 1, 0, None),
        "fire": (1, 0, None, None, 1, 1, 1, 0, 1, 1),
    }
