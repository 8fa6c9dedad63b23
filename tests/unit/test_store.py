"""The store against real chdb: migrations, row shapes against the DDL, idempotent inserts."""

import json

import pytest

from schemas.events import GridReport
from streams.correlation import Correlator, DictStates
from streams.identity import Pseudonymiser
from streams.pipeline import event_rows, notice_rows, signal_rows
from streams.routing import route
from streams.ruleset import load_rules
from streams.store import DATABASE, EmbeddedStore, migrate, migrations
from streams.validation import Origin, Validator

from tests.helpers import COMMUNITY, T0, grid_report

V = Validator(Pseudonymiser(b"k"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = EmbeddedStore(str(tmp_path_factory.mktemp("chdb")))
    assert migrate(s) == [v for v, _, _ in migrations()]
    yield s
    s.close()


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
             ("dead_letters", json.dumps(letter.row(V.pseudonymiser, T0), default=str).encode())]
    rows: dict[str, list[bytes]] = {}
    for table, line in lines:
        rows.setdefault(table, []).append(line)
    return rows


def test_migrations_are_idempotent(store):
    assert migrate(store) == []
    assert set(store.tables()) == {"events", "dead_letters", "signals", "signal_evidence", "notices"}


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
    got = store.query("SELECT uid, county, community, subjects, text FROM fengqiao.events ORDER BY uid")
    assert [r["uid"] for r in got] == ["grid:t-000001", "grid:t-000002", "grid:t-000003"]
    assert got[0]["county"] == "210202" and got[0]["community"] == COMMUNITY
    assert "13812345678" not in json.dumps(got, ensure_ascii=False)


def test_query_parameters_are_bound_not_spliced(store):
    rows = store.query("SELECT {x:String} AS x, {n:UInt32} + 1 AS n", {"x": "'; DROP TABLE t; --", "n": 41})
    assert rows == [{"x": "'; DROP TABLE t; --", "n": 42}]
