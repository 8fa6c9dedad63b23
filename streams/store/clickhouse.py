"""The ClickHouse store: chdb in-process (embedded default) or a server via clickhouse-connect.

Both run the same DDL (``schemas/clickhouse/``) and the same analyst SQL, with query
parameters written ``{name:Type}``. Rows go in as JSON lines (JSONEachRow), parsed by
ClickHouse itself: chdb streams the insert, a server takes it through clickhouse-connect. One
process owns a chdb path; every call to the store goes through one thread so the event loop
never blocks on it.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from schemas.clickhouse.ddl import DATABASE, cluster_form, migrations, migrations_table
from schemas.reference.regions import registry
from streams.config import Settings
from streams.store.jurisdiction import table_filters

log = logging.getLogger(__name__)

Row = Mapping[str, Any] | bytes


def sql_literal(value: Any) -> str:
    """A setting's value as a ClickHouse literal: numbers as they are, strings quoted and escaped."""
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def json_lines(table: str, columns: Sequence[tuple[str, str, bool]], rows: Sequence[Row]) -> bytes:
    """Rows (mappings, or JSON objects already encoded) as JSON lines for an insert.

    ``columns`` are (name, ClickHouse type, required). A required column missing from a row is
    an error, never a silent default; a column with a DEFAULT may be left out. Fields that are no
    column (a contract's ``schema_version``) are ignored by ClickHouse; a time without an offset
    is Beijing time, the columns' time zone.
    """
    required = [name for name, _, needed in columns if needed]
    lines = []
    for row in rows:
        line = row if isinstance(row, bytes) else orjson.dumps(row)
        fields = orjson.loads(line) if isinstance(row, bytes) else row
        for name in required:
            if name not in fields:
                raise ValueError(f"{table}: a row has no {name!r}")
        lines.append(line)
    return b"\n".join(lines)


# How ClickHouse reads those lines: ISO 8601 times with or without an offset, extra fields skipped.
JSON_INSERT_SETTINGS = {"date_time_input_format": "best_effort", "input_format_skip_unknown_fields": 1}


class Store(abc.ABC):
    """What the pipeline and the analysts need from ClickHouse."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="clickhouse", initializer=self._mark_store_thread
        )
        self._store_thread: int | None = None
        self._columns: dict[str, list[tuple[str, str, bool]]] = {}

    def _mark_store_thread(self) -> None:
        self._store_thread = threading.get_ident()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the store's thread, directly when already there."""
        if threading.get_ident() == self._store_thread:
            return fn(*args, **kwargs)
        return self._executor.submit(fn, *args, **kwargs).result()

    @abc.abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    @abc.abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def columns(self, table: str) -> list[tuple[str, str, bool]]:
        """The insertable columns of ``table``: (name, type, required), materialized ones left out."""
        if table not in self._columns:
            rows = self.query(
                "SELECT name, type, default_kind FROM system.columns WHERE database = {db:String} "
                "AND table = {t:String} AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position",
                {"db": DATABASE, "t": table},
            )
            if not rows:
                raise LookupError(f"no table {DATABASE}.{table}")
            self._columns[table] = [(r["name"], r["type"], r["default_kind"] == "") for r in rows]
        return self._columns[table]

    def forget_columns(self) -> None:
        """After DDL: read the tables' columns afresh."""
        self._columns.clear()

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str | None = None) -> None:
        """Insert rows as one JSONEachRow block (parsed by ClickHouse, not here); a repeated insert
        with the same token is a no-op."""
        if rows:
            settings: dict[str, Any] = dict(JSON_INSERT_SETTINGS)
            if dedup_token:
                settings["insert_deduplication_token"] = dedup_token
            self._insert_json(f"{DATABASE}.{table}", json_lines(table, self.columns(table), rows), settings)

    @abc.abstractmethod
    def _insert_json(self, table: str, data: bytes, settings: dict[str, Any]) -> None:
        """Send JSON lines with their settings."""

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run a store call on the store's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def count(self, table: str, final: bool = True) -> int:
        rows = self.query(f"SELECT count() AS n FROM {DATABASE}.{table}{' FINAL' if final else ''}")
        return int(rows[0]["n"])

    def tables(self, rollups: bool = False) -> list[str]:
        """The tables rows are written to; with ``rollups``, the aggregate rollups too."""
        rows = self.query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' "
            "ORDER BY name",
            {"db": DATABASE},
        )
        return [r["name"] for r in rows
                if r["name"] != "schema_migrations" and (rollups or not r["engine"].startswith("Aggregating"))]


class EmbeddedStore(Store):
    """chdb under the data directory: ClickHouse in this process."""

    def __init__(self, path: str) -> None:
        super().__init__()
        from chdb import session

        self.path = path
        self._session = self._executor.submit(session.Session, path).result()
        self._call(self._session.query, "SET output_format_json_quote_64bit_integers = 0")

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._call(self._session.query, sql, "CSV", params=dict(params or {}))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        result = self._call(self._session.query, sql, "JSONEachRow", params=dict(params or {}))
        return [orjson.loads(line) for line in result.bytes().splitlines() if line]

    def _insert_json(self, table: str, data: bytes, settings: dict[str, Any]) -> None:
        clause = " SETTINGS " + ", ".join(f"{k} = {sql_literal(v)}" for k, v in settings.items()) if settings else ""
        self._call(self._send, f"INSERT INTO {table}{clause}", data)

    def scope_to(self, centre: str) -> None:
        """From now on read only ``centre``'s jurisdiction, read-only: settings cannot be changed back."""
        self.execute(f"SET additional_table_filters = {table_filters(centre)}")
        self.execute("SET readonly = 1")

    def _send(self, head: str, block: bytes) -> None:
        inserter = self._session.send_insert(head, "JSONEachRow")
        inserter.append(block)
        inserter.finish()

    def close(self) -> None:
        self._call(self._session.close)
        super().close()


class ServerStore(Store):
    """A ClickHouse server over HTTP through clickhouse-connect (compressed)."""

    # A Distributed table forwards an insert to its shards before answering, so "inserted"
    # means stored and the offsets may be committed.
    SERVER_INSERT_SETTINGS = {"distributed_foreground_insert": 1}

    def __init__(self, url: str) -> None:
        super().__init__()
        import clickhouse_connect

        self._client = clickhouse_connect.get_client(dsn=url, compress=True)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._call(self._client.command, sql, parameters=dict(params or {}))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        result = self._call(self._client.query, sql, parameters=dict(params or {}))
        return list(result.named_results())

    def _insert_json(self, table: str, data: bytes, settings: dict[str, Any]) -> None:
        self._call(self._client.raw_insert, table, insert_block=data, fmt="JSONEachRow",
                   settings={**self.SERVER_INSERT_SETTINGS, **settings})

    def close(self) -> None:
        self._client.close()
        super().close()


def open_store(settings: Settings) -> Store:
    """The configured store, with the schema migrated and the region dimension loaded."""
    if settings.embedded_clickhouse:
        settings.chdb_path.mkdir(parents=True, exist_ok=True)
        store: Store = EmbeddedStore(str(settings.chdb_path))
    else:
        store = ServerStore(settings.clickhouse_url or "")
    if settings.clickhouse_migrate:
        migrate(store, cluster=settings.clickhouse_cluster)
        load_regions(store, cluster=settings.clickhouse_cluster)
        apply_retention(store, settings.retention_days, cluster=settings.clickhouse_cluster)
    else:
        require_current(store)
    return store


def require_current(store: Store) -> None:
    """A process that may not migrate checks that someone did (``fengqiao migrate``)."""
    latest = max(v for v, _, _ in migrations())
    try:
        rows = store.query(f"SELECT max(version) AS v FROM {DATABASE}.schema_migrations")
        have = int(rows[0]["v"]) if rows else 0
    except Exception:  # no table yet: nothing was migrated
        have = 0
    if have < latest:
        store.close()
        raise RuntimeError(f"the ClickHouse schema is at version {have}, this fengqiao needs {latest}: "
                           "run fengqiao migrate (as a user allowed to change the schema)")


def migrate(store: Store, upto: int | None = None, cluster: str | None = None) -> list[int]:
    """Apply the migrations the store has not seen (up to ``upto``); idempotent. Returns those applied.

    With ``cluster``, each statement runs in its cluster form (Replicated and Distributed tables).
    """
    store.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}" + (f" ON CLUSTER '{cluster}'" if cluster else ""))
    store.execute(migrations_table(cluster))
    done = {int(r["version"]) for r in store.query(f"SELECT version FROM {DATABASE}.schema_migrations")}
    applied = []
    for version, name, statements in migrations():
        if version in done or (upto is not None and version > upto):
            continue
        for statement in statements:
            for form in cluster_form(statement, cluster) if cluster else [statement]:
                store.execute(form)
        store.forget_columns()
        store.insert("schema_migrations", [{"version": version, "name": name}])
        applied.append(version)
        log.info("applied ClickHouse migration %03d_%s", version, name)
    return applied


def load_regions(store: Store, cluster: str | None = None) -> int:
    """Load the chosen region pack into the region dimension, once per pack version."""
    reg = registry()
    have = store.query(f"SELECT count() AS n FROM {DATABASE}.regions FINAL WHERE registry_version = {{v:String}}",
                       {"v": reg.version})
    if int(have[0]["n"]) == len(reg):
        return 0
    source = "; ".join(f"{k}: {v}" for k, v in reg.meta.items() if k in ("source", "via", "codes as of"))
    rows = [
        {"id": int(r.code), "code": r.code, "region_code": r.code, "parent_id": int(r.parent or 0),
         "name": r.name, "full_name": reg.full_name(r.code) or r.name,
         "level": r.level.value, "status": r.status, "successor": r.successor or "", "synthetic": r.synthetic,
         "registry_version": reg.version, "valid_from": r.valid_from or None, "valid_to": r.valid_to or None,
         "source": source}
        for r in reg
    ]
    store.insert("regions", rows, dedup_token=f"regions:{reg.version}")
    on = f" ON CLUSTER '{cluster}'" if cluster else ""
    store.execute(f"SYSTEM RELOAD DICTIONARY{on} {DATABASE}.region_dict")
    return len(rows)


# Raw rows age out after the retention; signals, notices, actions and rollups are the record
# that evaluation (考评) and analysis need, and are kept.
RETAINED_BY = {"events": "occurred_at", "dead_letters": "received_at", "signal_evidence": "occurred_at"}


def apply_retention(store: Store, days: int, cluster: str | None = None) -> None:
    """Set (or remove, for 0) the TTL of the raw tables; a metadata change, no data rewritten."""
    on = f" ON CLUSTER '{cluster}'" if cluster else ""
    for name, column in RETAINED_BY.items():
        table = f"{name}_local" if cluster else name
        ddl = store.query("SELECT create_table_query AS q FROM system.tables WHERE database = {db:String} "
                          "AND name = {t:String}", {"db": DATABASE, "t": table})[0]["q"]
        ttl = f"toDateTime({column}) + toIntervalDay({days})"
        if days and ttl not in ddl:
            store.execute(f"ALTER TABLE {DATABASE}.{table}{on} MODIFY TTL {ttl} "
                          "SETTINGS materialize_ttl_after_modify = 0")
        elif not days and " TTL " in ddl:
            store.execute(f"ALTER TABLE {DATABASE}.{table}{on} REMOVE TTL")
