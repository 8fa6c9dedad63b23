-- 001 core tables: events, dead letters, signals with their evidence, centre notices.
-- One source for chdb and a ClickHouse server. Every sink is idempotent: deterministic ids in
-- the sorting key, ReplacingMergeTree as the safety net, insert deduplication tokens on top.
-- Jurisdiction columns (city/county/township/community) are the centre codes at each level.

CREATE TABLE IF NOT EXISTS fengqiao.events
(
    uid          String COMMENT 'publisher:event_id, unique',
    event_id     String,
    publisher    LowCardinality(String),
    source       LowCardinality(String),
    category     LowCardinality(String),
    region_code  String COMMENT '12-digit division code',
    city         String MATERIALIZED substring(region_code, 1, 4),
    county       String MATERIALIZED substring(region_code, 1, 6),
    township     String MATERIALIZED substring(region_code, 1, 9),
    community    String MATERIALIZED substring(region_code, 1, 12),
    grid_code    String,
    occurred_at  DateTime64(3, 'Asia/Shanghai'),
    ingested_at  DateTime64(3, 'Asia/Shanghai'),
    level        LowCardinality(String) COMMENT 'red|orange|yellow|blue or empty',
    subjects     Array(String) COMMENT 'pseudonyms, never identifiers in clear',
    text         String COMMENT 'free text, identifiers masked',
    attributes   Map(String, String),
    drill        Bool
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (county, occurred_at, uid)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.dead_letters
(
    dlq_id        String COMMENT 'source topic/partition/offset',
    source_topic  LowCardinality(String),
    partition     UInt32,
    offset        UInt64,
    reason        LowCardinality(String),
    field         String COMMENT 'path of the failing field',
    message       String,
    raw_sha256    String COMMENT 'hash of the original bytes, kept whole on the dead-letters topic',
    raw_preview   String COMMENT 'first bytes with identifiers masked',
    received_at   DateTime64(3, 'Asia/Shanghai')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (source_topic, dlq_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.signals
(
    signal_id     String,
    version       UInt32,
    rule_id       LowCardinality(String),
    rule_name     String,
    level         LowCardinality(String),
    entity_level  LowCardinality(String),
    entity        String,
    region_code   String,
    city          String MATERIALIZED substring(region_code, 1, 4),
    county        String MATERIALIZED substring(region_code, 1, 6),
    township      String MATERIALIZED substring(region_code, 1, 9),
    community     String MATERIALIZED substring(region_code, 1, 12),
    window_start  DateTime64(3, 'Asia/Shanghai'),
    window_end    DateTime64(3, 'Asia/Shanghai'),
    raised_at     DateTime64(3, 'Asia/Shanghai'),
    updated_at    DateTime64(3, 'Asia/Shanghai'),
    event_count   UInt32,
    summary       String,
    rule_chain    Array(String),
    drill         Bool
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(raised_at)
ORDER BY signal_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.signal_evidence
(
    signal_id    String,
    uid          String,
    source       LowCardinality(String),
    category     LowCardinality(String),
    occurred_at  DateTime64(3, 'Asia/Shanghai')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (signal_id, uid)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.notices
(
    notice_id       String,
    signal_id       String,
    signal_version  UInt32,
    centre_code     String,
    centre_level    LowCardinality(String),
    role            LowCardinality(String) COMMENT 'handle (承办) or inform (知悉)',
    level           LowCardinality(String),
    rule_id         LowCardinality(String),
    region_code     String,
    summary         String,
    ack_due         DateTime64(3, 'Asia/Shanghai'),
    close_due       DateTime64(3, 'Asia/Shanghai'),
    created_at      DateTime64(3, 'Asia/Shanghai'),
    drill           Bool
)
ENGINE = ReplacingMergeTree(signal_version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (centre_code, notice_id)
SETTINGS non_replicated_deduplication_window = 1000;
