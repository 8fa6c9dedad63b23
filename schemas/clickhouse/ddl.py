"""ClickHouse DDL (建表语句): one source, ``schemas/clickhouse/NNN_name.sql``, for every store.

chdb and a single server run the statements as written. A cluster runs them rewritten by
``cluster_statements``: each MergeTree table becomes a Replicated table on its shard named
``<table>_local``, with a Distributed table of the original name over it, so the analysts' SQL
and the sinks' inserts are the same everywhere. Materialized views fire on the local tables; plain
views read the Distributed ones.
The region dimension is small and read by joins and the dictionary: it is replicated whole to
every node instead of being sharded.
"""

from __future__ import annotations

import re
from importlib import resources

DATABASE = "fengqiao"

# Tables kept whole on every node (every shard's replicas share one replication path).
EVERY_NODE = {"regions"}
# How a Distributed table spreads rows: a county's rows together (county-scoped queries stay on
# one shard), and every version of a row on the same shard so ReplacingMergeTree can merge them.
SHARDING_KEY = {"dead_letters": "cityHash64(dlq_id)"}
DEFAULT_SHARDING_KEY = "cityHash64(substring(region_code, 1, 6))"

_COMMENT = re.compile(r"^\s*--.*$", re.MULTILINE)


def migrations() -> list[tuple[int, str, list[str]]]:
    """The bundled migrations, ``NNN_name.sql``, as (version, name, statements) in order."""
    out = []
    for f in sorted(resources.files("schemas").joinpath("clickhouse").iterdir(), key=lambda p: p.name):
        match = re.fullmatch(r"(\d{3})_(\w+)\.sql", f.name)
        if not match:
            continue
        text = _COMMENT.sub("", f.read_text("utf-8"))
        statements = [s.strip() for s in text.split(";") if s.strip()]
        out.append((int(match[1]), match[2], statements))
    return out


_TABLE = re.compile(rf"^CREATE TABLE IF NOT EXISTS {DATABASE}\.(\w+)\s*\(")
_ENGINE = re.compile(r"ENGINE = (\w*)MergeTree(?:\(([^)]*)\))?")
_VIEW = re.compile(rf"^CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}\.(\w+) TO {DATABASE}\.(\w+) AS")
_PLAIN_VIEW = re.compile(rf"^CREATE VIEW IF NOT EXISTS {DATABASE}\.(\w+) AS")
_FROM = re.compile(rf"\bFROM {DATABASE}\.(\w+)")
_ALTER = re.compile(rf"^ALTER TABLE {DATABASE}\.(\w+)")
_DICTIONARY = re.compile(rf"^CREATE DICTIONARY IF NOT EXISTS {DATABASE}\.(\w+)")


def cluster_statements(cluster: str) -> list[str]:
    """Every migration's statements for a cluster named ``cluster`` (macros {shard}, {replica})."""
    out = [f"CREATE DATABASE IF NOT EXISTS {DATABASE} ON CLUSTER '{cluster}'", migrations_table(cluster)]
    for _, _, statements in migrations():
        for statement in statements:
            out.extend(cluster_form(statement, cluster))
    return out


def migrations_table(cluster: str | None) -> str:
    """The table that records the versions applied (on a cluster: one record for every node)."""
    if cluster:
        on = f" ON CLUSTER '{cluster}'"
        engine = f"ReplicatedMergeTree('/clickhouse/tables/all/{DATABASE}/schema_migrations', '{{replica}}')"
    else:
        on, engine = "", "MergeTree"
    return (f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations{on} "
            f"(version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)) ENGINE = {engine} ORDER BY version")


def cluster_form(statement: str, cluster: str) -> list[str]:
    """One migration statement as a cluster runs it."""
    on = f"ON CLUSTER '{cluster}'"
    if m := _TABLE.match(statement):
        return _table_for_cluster(statement, m[1], cluster, on)
    if m := _VIEW.match(statement):
        view = statement.replace(m[0], f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{m[1]} {on} "
                                       f"TO {DATABASE}.{m[2]}_local AS", 1)
        return [_FROM.sub(lambda f: f"FROM {DATABASE}.{f[1]}{'' if f[1] in EVERY_NODE else '_local'}", view)]
    if m := _PLAIN_VIEW.match(statement):  # reads the Distributed tables: the whole cluster
        return [statement.replace(m[0], f"CREATE VIEW IF NOT EXISTS {DATABASE}.{m[1]} {on} AS", 1)]
    if m := _ALTER.match(statement):
        tail = statement[m.end():]
        if m[1] in EVERY_NODE:
            return [f"ALTER TABLE {DATABASE}.{m[1]} {on}{tail}"]
        return [f"ALTER TABLE {DATABASE}.{m[1]}_local {on}{tail}", f"ALTER TABLE {DATABASE}.{m[1]} {on}{tail}"]
    if m := _DICTIONARY.match(statement):
        return [statement.replace(m[0], f"{m[0]} {on}", 1)]
    raise ValueError(f"no cluster form for this statement; teach schemas/ddl.py: {statement[:80]}")


def _table_for_cluster(statement: str, table: str, cluster: str, on: str) -> list[str]:
    engine = _ENGINE.search(statement)
    if engine is None:
        raise ValueError(f"{table}: only MergeTree tables have a cluster form")
    shard = "all" if table in EVERY_NODE else "{shard}"
    args = [f"'/clickhouse/tables/{shard}/{DATABASE}/{table}'", "'{replica}'"]
    if engine[2]:
        args.append(engine[2])
    local = table if table in EVERY_NODE else f"{table}_local"
    replicated = (statement
                  .replace(f"{DATABASE}.{table}", f"{DATABASE}.{local} {on}", 1)
                  .replace(engine[0], f"ENGINE = Replicated{engine[1]}MergeTree({', '.join(args)})", 1)
                  .replace("non_replicated_deduplication_window", "replicated_deduplication_window"))
    if table in EVERY_NODE:
        return [replicated]
    key = SHARDING_KEY.get(table, DEFAULT_SHARDING_KEY)
    distributed = (f"CREATE TABLE IF NOT EXISTS {DATABASE}.{table} {on} AS {DATABASE}.{local} "
                   f"ENGINE = Distributed('{cluster}', {DATABASE}, {local}, {key})")
    return [replicated, distributed]


def script(statements: list[str]) -> str:
    """Statements as one file for clickhouse-client --multiquery."""
    return "".join(f"{s};\n\n" for s in statements)
