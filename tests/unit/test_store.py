"""The store against real chdb: migrations, row shapes against the DDL, idempotent inserts,
the region dimension, rollups and retention."""

import json

import pytest

from schemas.clickhouse.ddl import DATABASE, migrations
from schemas.contracts.events import GridReport
from streams.detection.correlator import Correlator, DictStates
from streams.detection.ruleset import load_rules
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import Origin, Validator
from streams.notify.routing import route
from streams.store.clickhouse import EmbeddedStore, apply_retention, json_lines, load_regions, migrate
from streams.worker.sinks import dead_letter_row, event_rows, notice_rows, signal_rows
from tests.helpers import COMMUNITY, T0, grid_report

V = Validator(Pseudonymiser(b"k"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = EmbeddedStore(str(tmp_path_factory.mktemp("chdb")))
    assert migrate(s) == [v for v, _, _ in migrations()]
    load_regions(s)
    yield s
    s.close()


@pytest.fixture
def empty(store):
    """The same chdb (one path per process) with the database dropped; rebuilt afterwards."""
    store.execute(f"DROP DATABASE {DATABASE} SYNC")
    store.forget_columns()
    yield store
    store.execute(f"DROP DATABASE {DATABASE} SYNC")
    store.forget_columns()
    migrate(store)
    load_regions(store)


def sample_rows():
    events = [V.normalise_grid_report(GridReport.model_validate(grid_report(n)), T0) for n in (1, 2, 3)]
    correlator, states, signal = Correlator(load_rules()), DictStates(), None
    for e in events:
        for out in correlator.process(e, 0, states, T0):
            signal = out.signal
    letter = V.grid_report(b"{oops", Origin("grid-reports", 0, 7), T0)
    lines = [*(line for e in events for line in event_rows(e.model_dump_json().encode())),
             *signal_rows(signal.model_dump_json().encode()),
             *(line for n in route(signal, T0) for line in notice_rows(n.model_dump_json().encode())),
             ("dead_letters", json.dumps(dead_letter_row(letter, V.pseudonymiser, T0), default=str).encode())]
    rows: dict[str, list[bytes]] = {}
    for table, line in lines:
        rows.setdefault(table, []).append(line)
    return rows


def test_migrations_are_idempotent(store):
    assert migrate(store) == []
    assert set(store.tables()) == {"events", "dead_letters", "signals", "signal_evidence", "notices",
                                   "dispatch_actions", "regions", "late_events", "person_links", "rule_changes",
                                   "silences"}
    assert set(store.tables(rollups=True)) - set(store.tables()) == {"events_hourly", "signals_hourly"}


def test_migrating_from_the_previous_version_keeps_the_rows(empty):
    s = empty
    assert migrate(s, upto=1) == [1]
    old = {"signal_id": "sig-1", "uid": "grid:e1", "source": "grid", "category": "dispute",
           "occurred_at": "2026-11-01T08:00:00+08:00"}
    s.insert("signal_evidence", [old])
    assert migrate(s) == [v for v, _, _ in migrations() if v > 1]
    assert s.query("SELECT signal_id, region_code FROM fengqiao.signal_evidence") == [
        {"signal_id": "sig-1", "region_code": ""}]
    assert migrate(s) == []


def test_every_row_fills_every_stored_column(store):
    """A column a row forgets would silently take its default; that once merged distinct events."""
    for table, rows in sample_rows().items():
        columns = {
            r["name"] for r in store.query(
                "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
                "AND default_kind != 'MATERIALIZED'", {"db": DATABASE, "t": table})
        }
        assert columns, table
        for row in rows:
            fields = set(json.loads(row))
            assert columns <= fields, (table, columns - fields)
            assert fields - columns <= {"schema_version"}, (table, fields - columns)


def test_rows_insert_and_a_retried_batch_is_stored_once(store):
    for table, rows in sample_rows().items():
        store.insert(table, rows, dedup_token=f"test:{table}")
        store.insert(table, rows, dedup_token=f"test:{table}")  # a retry after an uncertain insert
        assert store.count(table, final=False) == len(rows), table
    got = store.query("SELECT uid, county, community, subjects, text, identities FROM fengqiao.events ORDER BY uid")
    assert [r["uid"] for r in got] == ["grid:t-000001", "grid:t-000002", "grid:t-000003"]
    assert got[0]["county"] == "210202" and got[0]["community"] == COMMUNITY
    zhang, li = got[0]["identities"]  # every identifier of each party, pseudonymised
    assert zhang["id_number"] in got[0]["subjects"] and li["id_number"] is None and li["mobile"] in got[0]["subjects"]
    assert all(v is None or v.startswith("p-") for i in (zhang, li) for v in i.values())
    assert "13812345678" not in json.dumps(got, ensure_ascii=False)


def test_query_parameters_are_bound_not_spliced(store):
    rows = store.query("SELECT {x:String} AS x, {n:UInt32} + 1 AS n", {"x": "'; DROP TABLE t; --", "n": 41})
    assert rows == [{"x": "'; DROP TABLE t; --", "n": 42}]


def test_a_row_missing_a_column_is_refused_not_defaulted(store):
    for row in ({"event_id": "x"}, b'{"event_id": "x"}'):
        with pytest.raises(ValueError, match="events: a row has no 'uid'"):
            json_lines("events", store.columns("events"), [row])
        with pytest.raises(ValueError, match="events: a row has no 'uid'"):
            store.insert("events", [row])


def test_times_without_an_offset_are_beijing_time(store):
    rows = [{"signal_id": f"s-{n}", "region_code": COMMUNITY, "uid": "u", "source": "grid", "category": "c",
             "occurred_at": t} for n, t in enumerate(("2026-11-01T08:00:00", "2026-11-01T00:00:00Z",
                                                       "2026-11-01T08:00:00.000+08:00"))]
    store.insert("signal_evidence", rows, dedup_token="test:times")
    got = store.query("SELECT DISTINCT toUnixTimestamp(occurred_at) AS t FROM fengqiao.signal_evidence "
                      "WHERE signal_id LIKE 's-%'")
    assert got == [{"t": 1793491200}]  # 2026-11-01 00:00 UTC, whichever way it was written


def test_the_region_dimension_walks_the_hierarchy(store):
    assert load_regions(store) == 0  # already loaded for this registry version
    got = store.query(
        "SELECT dictGet('fengqiao.region_dict', 'full_name', toUInt64({c:String})) AS name, "
        "arrayMap(x -> dictGet('fengqiao.region_dict', 'level', x), "
        "dictGetHierarchy('fengqiao.region_dict', toUInt64({c:String}))) AS levels", {"c": COMMUNITY})
    assert got == [{"name": "大连市中山区海军广场街道春德社区居委会",
                    "levels": ["community", "township", "county", "city", "province"]}]
    abolished = store.query("SELECT count() AS n FROM fengqiao.regions WHERE status = 'abolished'")
    assert abolished[0]["n"] >= 1


def test_rollups_count_a_batch_read_twice_once(empty):
    """A crash between insert and commit re-reads a batch under other offsets: counts stay exact."""
    s = empty
    migrate(s)
    rows = sample_rows()["events"]
    s.insert("events", rows, dedup_token="events:0:0-2")
    s.insert("events", rows[1:], dedup_token="events:0:1-2")  # the same events, read again
    got = s.query("SELECT uniqExactMerge(events) AS events, sum(1) AS cells FROM fengqiao.events_hourly")
    assert got[0]["events"] == 3
    assert s.count("events", final=True) == 3


def test_retention_is_set_and_removed_idempotently(empty):
    s = empty
    migrate(s)

    def ttl() -> str:
        q = s.query("SELECT create_table_query AS q FROM system.tables WHERE database = 'fengqiao' "
                    "AND name = 'events'")[0]["q"]
        return q.partition(" TTL ")[2].partition(" SETTINGS")[0]

    for _ in range(2):
        apply_retention(s, 365)
        assert ttl() == "toDateTime(occurred_at) + toIntervalDay(365)"
    for _ in range(2):
        apply_retention(s, 0)
        assert ttl() == ""
