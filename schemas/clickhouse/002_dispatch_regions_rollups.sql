-- 002 the dispatch audit (调度处置留痕), the region dimension with its hierarchy, hourly rollups,
-- and a region on every row so that each table can be scoped to a centre's jurisdiction.

-- Evidence is scoped with its signal: the signal's region, not the event's.
ALTER TABLE fengqiao.signal_evidence
    ADD COLUMN IF NOT EXISTS region_code String COMMENT 'the signal''s 12-digit region' AFTER signal_id;

-- Every action a centre took or tried, accepted or refused, with who, when and why.
CREATE TABLE IF NOT EXISTS fengqiao.dispatch_actions
(
    action_id     String,
    signal_id     String,
    region_code   String COMMENT 'the signal''s 12-digit region',
    centre_code   String COMMENT 'the acting centre (4, 6, 9 or 12 digits)',
    centre_level  LowCardinality(String),
    kind          LowCardinality(String) COMMENT 'acknowledge|assign|coordinate|feedback|close|reopen',
    departments   Array(LowCardinality(String)) COMMENT 'for assign (分办) and coordinate (协同)',
    note          String COMMENT 'identifiers masked',
    actor         String COMMENT 'operator id',
    occurred_at   DateTime64(3, 'Asia/Shanghai'),
    recorded_at   DateTime64(3, 'Asia/Shanghai'),
    outcome       LowCardinality(String) COMMENT 'accepted | refused',
    reason        String COMMENT 'why refused: outside the jurisdiction, or not allowed in this state'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (signal_id, occurred_at, action_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- The region dimension (行政区划): loaded from the bundled registry at start, one version at a time.
-- ids are the codes as numbers (12 digits, 15 for a grid) so the dictionary can walk the hierarchy.
CREATE TABLE IF NOT EXISTS fengqiao.regions
(
    id                UInt64,
    code              String,
    region_code       String COMMENT 'the code, for jurisdiction scoping like every table',
    parent_id         UInt64 COMMENT '0 for a province',
    name              String,
    full_name         String COMMENT 'names from the city down',
    level             LowCardinality(String) COMMENT 'province|city|county|township|community|grid',
    status            LowCardinality(String) COMMENT 'active | abolished',
    successor         String,
    synthetic         Bool,
    registry_version  LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY id;

CREATE DICTIONARY IF NOT EXISTS fengqiao.region_dict
(
    id         UInt64,
    parent_id  UInt64 HIERARCHICAL,
    code       String,
    name       String,
    full_name  String,
    level      String,
    status     String
)
PRIMARY KEY id
SOURCE(CLICKHOUSE(DB 'fengqiao' TABLE 'regions'))
LAYOUT(HASHED())
LIFETIME(MIN 60 MAX 600);

-- Hourly rollups (按小时汇总). Counts are exact distinct ids, so a batch read twice after a crash
-- (at-least-once) is not counted twice: read them with uniqExactMerge().
CREATE TABLE IF NOT EXISTS fengqiao.events_hourly
(
    hour         DateTime('Asia/Shanghai'),
    region_code  String COMMENT '12-digit community code',
    city         String MATERIALIZED substring(region_code, 1, 4),
    county       String MATERIALIZED substring(region_code, 1, 6),
    township     String MATERIALIZED substring(region_code, 1, 9),
    source       LowCardinality(String),
    category     LowCardinality(String),
    level        LowCardinality(String),
    drill        Bool,
    events       AggregateFunction(uniqExact, String) COMMENT 'distinct event uids',
    subjects     AggregateFunction(uniqExact, String) COMMENT 'distinct pseudonymised persons'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (county, hour, region_code, source, category, level, drill);

CREATE MATERIALIZED VIEW IF NOT EXISTS fengqiao.events_hourly_mv TO fengqiao.events_hourly AS
SELECT
    toStartOfHour(occurred_at) AS hour,
    region_code,
    source,
    category,
    level,
    drill,
    uniqExactState(uid) AS events,
    uniqExactStateArray(subjects) AS subjects
FROM fengqiao.events
GROUP BY hour, region_code, source, category, level, drill;

-- A signal counts once at each level it reached (a signal upgraded yellow to orange counts in both).
CREATE TABLE IF NOT EXISTS fengqiao.signals_hourly
(
    hour         DateTime('Asia/Shanghai'),
    region_code  String,
    city         String MATERIALIZED substring(region_code, 1, 4),
    county       String MATERIALIZED substring(region_code, 1, 6),
    township     String MATERIALIZED substring(region_code, 1, 9),
    rule_id      LowCardinality(String),
    level        LowCardinality(String),
    drill        Bool,
    signals      AggregateFunction(uniqExact, String) COMMENT 'distinct signal ids'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (county, hour, region_code, rule_id, level, drill);

CREATE MATERIALIZED VIEW IF NOT EXISTS fengqiao.signals_hourly_mv TO fengqiao.signals_hourly AS
SELECT
    toStartOfHour(raised_at) AS hour,
    region_code,
    rule_id,
    level,
    drill,
    uniqExactState(signal_id) AS signals
FROM fengqiao.signals
GROUP BY hour, region_code, rule_id, level, drill;
