"""The ClickHouse store: chdb in-process (embedded default) or a server via clickhouse-connect.

Both run the same DDL (``schemas/clickhouse/``) and the same analyst SQL, with query
parameters written ``{name:Type}``. One process owns a chdb path; every call to the store goes
through one thread so the event loop never blocks on it.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import orjson

from streams.config import Settings

log = logging.getLogger(__name__)

DATABASE = "fengqiao"
# JSONEachRow: ClickHouse converts each field to its column's type from the DDL. A contract's
# own bookkeeping fields (schema_version) are skipped; tests check that every column is filled.
INSERT_SETTINGS = {"date_time_input_format": "best_effort", "input_format_skip_unknown_fields": 1}
Row = Mapping[str, Any] | bytes


def sql_literal(value: Any) -> str:
    """A setting's value as a ClickHouse literal: numbers as they are, strings quoted and escaped."""
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def encode_rows(rows: Sequence[Row]) -> bytes:
    """Rows (mappings, or JSON lines already encoded) as one JSONEachRow block."""
    return b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in rows)


class Store(abc.ABC):
    """What the pipeline and the analysts need from ClickHouse."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="clickhouse", initializer=self._mark_store_thread
        )
        self._store_thread: int | None = None

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

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str | None = None) -> None:
        """Insert rows; a repeated insert with the same token is a no-op (retries after doubt)."""
        if not rows:
            return
        settings: dict[str, Any] = dict(INSERT_SETTINGS)
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        self._insert_block(f"{DATABASE}.{table}", encode_rows(rows), settings)

    @abc.abstractmethod
    def _insert_block(self, table: str, block: bytes, settings: dict[str, Any]) -> None:
        """Send one JSONEachRow block with its settings."""

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run a store call on the store's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def count(self, table: str, final: bool = True) -> int:
        rows = self.query(f"SELECT count() AS n FROM {DATABASE}.{table}{' FINAL' if final else ''}")
        return int(rows[0]["n"])

    def tables(self) -> list[str]:
        rows = self.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' "
            "ORDER BY name",
            {"db": DATABASE},
        )
        return [r["name"] for r in rows if r["name"] != "schema_migrations"]


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

    def _insert_block(self, table: str, block: bytes, settings: dict[str, Any]) -> None:
        clause = ", ".join(f"{k} = {sql_literal(v)}" for k, v in settings.items())
        head = f"INSERT INTO {table} SETTINGS {clause} FORMAT JSONEachRow\n"
        self._call(self._session.query, head + block.decode())

    def close(self) -> None:
        self._call(self._session.close)
        super().close()


class ServerStore(Store):
    """A ClickHouse server over HTTP through clickhouse-connect (compressed)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        import clickhouse_connect

        self._client = clickhouse_connect.get_client(dsn=url, compress=True)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._call(self._client.command, sql, parameters=dict(params or {}))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        result = self._call(self._client.query, sql, parameters=dict(params or {}))
        return list(result.named_results())

    def _insert_block(self, table: str, block: bytes, settings: dict[str, Any]) -> None:
        self._call(self._client.raw_insert, table, insert_block=block, fmt="JSONEachRow", settings=settings)

    def close(self) -> None:
        self._client.close()
        super().close()


def open_store(settings: Settings) -> Store:
    """The configured store, with the schema migrated to the current version."""
    if settings.embedded_clickhouse:
        settings.chdb_path.mkdir(parents=True, exist_ok=True)
        store: Store = EmbeddedStore(str(settings.chdb_path))
    else:
        store = ServerStore(settings.clickhouse_url or "")
    migrate(store)
    return store


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


def migrate(store: Store) -> list[int]:
    """Apply the migrations the store has not seen; idempotent. Returns the versions applied."""
    store.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    store.execute(
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )
    done = {int(r["version"]) for r in store.query(f"SELECT version FROM {DATABASE}.schema_migrations")}
    applied = []
    for version, name, statements in migrations():
        if version in done:
            continue
        for statement in statements:
            store.execute(statement)
        store.insert("schema_migrations", [{"version": version, "name": name}])
        applied.append(version)
        log.info("applied ClickHouse migration %03d_%s", version, name)
    return applied
