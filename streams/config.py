"""Configuration (环境变量前缀 ``FENGQIAO_``).

Unset Kafka means the embedded tansu broker on a free loopback port; unset ClickHouse means
chdb under ``<data dir>/clickhouse``. A real Kafka or ClickHouse server is used as soon as it
is configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FENGQIAO_", env_file=None, extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; unset: a broker fengqiao up starts itself (FENGQIAO_BROKER)"
    )
    broker: Literal["tansu", "kafka"] | None = Field(
        default=None, description="with no Kafka configured, the broker fengqiao up starts: tansu (unset; memory "
        "only, nothing beyond pip) or kafka (Apache Kafka under the data dir, fetched with Maven; keeps its topics). "
        "With one configured: tansu if it is one (its defects are then worked around), else unset")
    partition_scale: int = Field(
        default=1, ge=1, le=64, description="multiplies every topic's partitions: 1 city, 2 province, 8 country"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="SSL, SASL_PLAINTEXT or SASL_SSL for a production Kafka, for every client")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism")
    kafka_sasl_username: str | None = Field(default=None, description="SASL user")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password")
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for the brokers' certificates")
    kafka_ssl_certfile: Path | None = Field(default=None, description="client certificate, for mutual TLS")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="the client certificate's key")
    kafka_replication_factor: int = Field(default=1, ge=1, description="copies of each topic created; 3 in production")
    clickhouse_url: str | None = Field(
        default=None, description="http(s)://user:password@host:8123/; unset: chdb under the data dir"
    )
    clickhouse_migrate: bool = Field(
        default=True, description="apply the schema at start; false: only check it (run fengqiao migrate)"
    )
    clickhouse_cluster: str | None = Field(
        default=None, description="a server cluster's name: tables are Replicated with Distributed over them"
    )
    data_dir: Path = Field(default=Path(".fengqiao"), description="chdb files, the API keys, the broker log")
    log_level: str = Field(default="WARNING", description="DEBUG, INFO, WARNING or ERROR")
    gateway_host: str = Field(default="127.0.0.1", description="the HTTP gateway's address")
    gateway_port: int = Field(default=8470, ge=0, le=65535, description="0: any free port")
    metrics_host: str = Field(default="127.0.0.1", description="the metrics endpoint's address")
    metrics_port: int = Field(default=9470, ge=0, le=65535, description="0: any free port")
    api_keys_file: Path | None = Field(default=None, description="publishers' hashed API keys; unset: <data dir>/api-keys.json")
    operators_file: Path | None = Field(default=None, description="the console's operator accounts (hashed passwords); "
                                        "unset: <data dir>/operators.json")
    console_url: str | None = Field(default=None, description="the console's address as operators reach it, e.g. "
                                    "https://fengqiao.example.gov.cn/console (links in notices and webhooks, and "
                                    "https means Secure cookies); unset: the gateway's own address")
    region_pack: str | None = Field(default=None, description="the region table: a pack installed with fengqiao "
                                    "regions import (its version), or a CSV file; unset: the bundled cn-2023 (the four "
                                    "cities down to their village and community committees)")
    grid_register: Path | None = Field(default=None, description="the grid register (CSV: grid_code, community, "
                                       "name, type, households, workers); unset: <data dir>/grids.csv once fengqiao "
                                       "grids import installed one, else four synthetic grids per community")
    matters_file: Path | None = Field(default=None, description="the deployment's admitted matter catalogue "
                                      "(事项清单, YAML as schemas/reference/matters.yaml: effective dates, a negative "
                                      "list); unset: the bundled one")
    rules_dir: Path | None = Field(default=None, description="a rule pack directory; unset: the bundled streams/detection/rules")
    app_id: str = Field(default="fengqiao", description="names the steps' consumer groups (<app id>-<step>) and state changelogs")
    # The embedded broker completes a group join only after the session timeout, so it is
    # kept short there; a real Kafka uses the usual longer value.
    kafka_session_timeout: float | None = Field(default=None, description="seconds; unset: 3 embedded, 30 Kafka")
    kafka_fetch_max_wait_ms: int = Field(
        default=100, ge=1, le=30_000, description="longest a step's fetch waits for new records (the embedded "
        "broker holds a fetch that long however little it has, adding it to every hop)")
    pseudonym_key: SecretStr = Field(
        default=SecretStr("fengqiao-development-key-change-me"),
        description="HMAC key for pseudonyms of personal identifiers; set a secret in production",
    )
    duplicate_horizon: float = Field(
        default=86400.0, gt=0, description="seconds during which a repeated publisher and event id is a duplicate"
    )
    retention_days: int = Field(
        default=0, ge=0, description="days raw events, dead letters and evidence are kept; 0: kept for good"
    )
    notice_repeat_interval: float = Field(
        default=1800.0, gt=0, description="seconds: an updated signal re-notifies its centres at most this often"
    )
    routing_file: Path | None = Field(default=None, description="the routing table (YAML); unset: the design's")
    webhooks_file: Path | None = Field(default=None, description="centres' webhooks (YAML); unset: none")
    webhook_attempts: int = Field(default=8, ge=1, description="deliveries tried before a notice is dead-lettered")
    supervision_tick: float = Field(default=1.0, gt=0, description="seconds between checks of the deadlines")
    sink_batch_size: int = Field(default=2000, ge=1, description="rows per ClickHouse insert, at most")
    sink_batch_seconds: float = Field(default=0.5, gt=0, description="seconds a sink waits to fill an insert")
    input_alignment_seconds: float = Field(
        default=300.0, ge=0, description="seconds of event time an input partition may run ahead of another "
        "that has more to read (a backlog is emitted in event-time order); 0: no alignment")
    source_idle_seconds: float = Field(
        default=30.0, ge=0, description="seconds after which a silent source no longer holds the event-time "
        "watermark back (absence rules wait for the slowest live source); 0: the latest event time seen")
    idle_watermark: Literal["clock", "event"] = Field(
        default="clock", description="when every source of a partition is silent and nothing is left to read, "
        "its watermark follows the wall clock less source_idle_seconds (clock: live, so that a deadline in a "
        "quiet place falls due), or stays at the latest event time (event: replays); a backtest follows the "
        "setting the live run had")

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def embedded_clickhouse(self) -> bool:
        return not self.clickhouse_url

    @property
    def keys_path(self) -> Path:
        return self.api_keys_file or self.data_dir / "api-keys.json"

    @property
    def operators_path(self) -> Path:
        return self.operators_file or self.data_dir / "operators.json"

    def console_base(self, port: int | None = None) -> str:
        """The console's address, without a trailing slash."""
        if self.console_url:
            return self.console_url.rstrip("/")
        return f"http://{self.gateway_host}:{port if port is not None else self.gateway_port}/console"

    @property
    def region_packs(self) -> Path:
        """Where ``fengqiao regions import`` installs packs."""
        return self.data_dir / "regions"

    def region_pack_path(self) -> Path | None:
        """The chosen pack's file, or None for the bundled one."""
        if not self.region_pack:
            return None
        installed = self.region_packs / f"{self.region_pack}.csv"
        path = installed if installed.exists() else Path(self.region_pack)
        if not path.exists():
            raise FileNotFoundError(f"FENGQIAO_REGION_PACK={self.region_pack}: neither an installed pack "
                                    f"({installed}) nor a file")
        return path

    def grid_register_path(self) -> Path | None:
        """The grid register in use, or None for synthetic grids."""
        if self.grid_register:
            if not self.grid_register.exists():
                raise FileNotFoundError(f"FENGQIAO_GRID_REGISTER={self.grid_register}: no such file")
            return self.grid_register
        installed = self.data_dir / "grids.csv"
        return installed if installed.exists() else None

    def console_link(self) -> str:
        """The console's address for links in notices: configured, or the gateway's when its port
        is fixed; '' when it cannot be known (a gateway on any free port, elsewhere)."""
        return self.console_base() if self.console_url or self.gateway_port else ""

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "clickhouse"

    @property
    def session_timeout(self) -> float:
        if self.kafka_session_timeout is not None:
            return self.kafka_session_timeout
        return 3.0 if self.tansu else 30.0

    @property
    def tansu(self) -> bool:
        """Whether the broker is tansu, whose defects are worked around (and only there)."""
        return self.broker == "tansu" or (self.broker is None and self.embedded_kafka)
