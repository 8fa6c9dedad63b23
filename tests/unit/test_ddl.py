"""DDL that only a server runs, parsed by ClickHouse's own parser (chdb's formatQuery)."""

from pathlib import Path

import pytest

from schemas.clickhouse.ddl import cluster_statements, migrations, script
from streams.store.clickhouse import EmbeddedStore, migrate
from streams.store.jurisdiction import TABLES, access_statements

DEPLOYED = Path(__file__).parents[2] / "deploy" / "clickhouse" / "cluster.sql"


@pytest.fixture(scope="module")
def chdb(tmp_path_factory):
    s = EmbeddedStore(str(tmp_path_factory.mktemp("parser")))
    yield s
    s.close()


def parses(chdb, statements):
    """Each statement through formatQuery, passed as a parameter so {shard} stays a macro.

    Parameter values are read in the escaped (TSV) form: backslashes, newlines and tabs escaped.
    """
    for statement in statements:
        escaped = statement.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
        got = chdb.query("SELECT formatQuery({q:String}) AS f", {"q": escaped})[0]["f"]
        assert got.split()[0] == statement.split()[0], statement


def test_the_cluster_ddl_parses_and_is_replicated_and_distributed(chdb):
    statements = cluster_statements("fengqiao")
    parses(chdb, statements)
    text = script(statements)
    for table in ("events", "signals", "signal_evidence", "notices", "dispatch_actions", "dead_letters",
                  "events_hourly", "signals_hourly"):
        assert f"CREATE TABLE IF NOT EXISTS fengqiao.{table}_local ON CLUSTER 'fengqiao'" in text
        assert f"ENGINE = Distributed('fengqiao', fengqiao, {table}_local," in text
    assert "TO fengqiao.events_hourly_local AS" in text and "FROM fengqiao.events_local" in text
    assert "'/clickhouse/tables/all/fengqiao/regions'" in text  # the dimension is whole on every node
    assert "non_replicated" not in text


def test_the_committed_cluster_ddl_is_current():
    assert DEPLOYED.read_text() == script(cluster_statements("fengqiao")), \
        "regenerate: fengqiao schema --cluster fengqiao > deploy/clickhouse/cluster.sql"


def test_roles_and_row_policies_parse(chdb):
    statements = access_statements()
    policies = [s for s in statements if "ROW POLICY" in s]
    parses(chdb, [s for s in statements if "centre_" not in s or "2102020" in s])  # every kind, a district's roles
    parses(chdb, access_statements("fengqiao")[-4:])
    assert {s.split(" ON fengqiao.")[1].split()[0] for s in policies} == set(TABLES)
    assert all("AS RESTRICTIVE TO ALL EXCEPT fengqiao_writer, fengqiao_platform" in s
               for s in policies if "jurisdiction" in s)
    assert "CREATE ROLE IF NOT EXISTS centre_2102" in statements  # a city
    assert "CREATE ROLE IF NOT EXISTS centre_210202001004" in statements  # a community


def test_every_table_has_a_jurisdiction(tmp_path_factory, chdb):
    migrate(chdb)
    assert set(chdb.tables(rollups=True)) == set(TABLES), "a new table needs its scope in streams/jurisdiction.py"
    assert [v for v, _, _ in migrations()] == sorted({v for v, _, _ in migrations()})
