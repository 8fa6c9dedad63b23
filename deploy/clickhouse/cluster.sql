CREATE DATABASE IF NOT EXISTS fengqiao ON CLUSTER 'fengqiao';

CREATE TABLE IF NOT EXISTS fengqiao.schema_migrations ON CLUSTER 'fengqiao' (version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)) ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/fengqiao/schema_migrations', '{replica}') ORDER BY version;

CREATE TABLE IF NOT EXISTS fengqiao.events_local ON CLUSTER 'fengqiao'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/events', '{replica}')
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (county, occurred_at, uid)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.events ON CLUSTER 'fengqiao' AS fengqiao.events_local ENGINE = Distributed('fengqiao', fengqiao, events_local, cityHash64(substring(region_code, 1, 6)));

CREATE TABLE IF NOT EXISTS fengqiao.dead_letters_local ON CLUSTER 'fengqiao'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/dead_letters', '{replica}')
PARTITION BY toYYYYMM(received_at)
ORDER BY (source_topic, dlq_id)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.dead_letters ON CLUSTER 'fengqiao' AS fengqiao.dead_letters_local ENGINE = Distributed('fengqiao', fengqiao, dead_letters_local, cityHash64(dlq_id));

CREATE TABLE IF NOT EXISTS fengqiao.signals_local ON CLUSTER 'fengqiao'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/signals', '{replica}', version)
PARTITION BY toYYYYMM(raised_at)
ORDER BY signal_id
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.signals ON CLUSTER 'fengqiao' AS fengqiao.signals_local ENGINE = Distributed('fengqiao', fengqiao, signals_local, cityHash64(substring(region_code, 1, 6)));

CREATE TABLE IF NOT EXISTS fengqiao.signal_evidence_local ON CLUSTER 'fengqiao'
(
    signal_id    String,
    uid          String,
    source       LowCardinality(String),
    category     LowCardinality(String),
    occurred_at  DateTime64(3, 'Asia/Shanghai')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/signal_evidence', '{replica}')
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (signal_id, uid)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.signal_evidence ON CLUSTER 'fengqiao' AS fengqiao.signal_evidence_local ENGINE = Distributed('fengqiao', fengqiao, signal_evidence_local, cityHash64(substring(region_code, 1, 6)));

CREATE TABLE IF NOT EXISTS fengqiao.notices_local ON CLUSTER 'fengqiao'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/notices', '{replica}', signal_version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (centre_code, notice_id)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.notices ON CLUSTER 'fengqiao' AS fengqiao.notices_local ENGINE = Distributed('fengqiao', fengqiao, notices_local, cityHash64(substring(region_code, 1, 6)));

ALTER TABLE fengqiao.signal_evidence_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS region_code String COMMENT 'the signal''s 12-digit region' AFTER signal_id;

ALTER TABLE fengqiao.signal_evidence ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS region_code String COMMENT 'the signal''s 12-digit region' AFTER signal_id;

CREATE TABLE IF NOT EXISTS fengqiao.dispatch_actions_local ON CLUSTER 'fengqiao'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/dispatch_actions', '{replica}')
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (signal_id, occurred_at, action_id)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.dispatch_actions ON CLUSTER 'fengqiao' AS fengqiao.dispatch_actions_local ENGINE = Distributed('fengqiao', fengqiao, dispatch_actions_local, cityHash64(substring(region_code, 1, 6)));

CREATE TABLE IF NOT EXISTS fengqiao.regions ON CLUSTER 'fengqiao'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/fengqiao/regions', '{replica}')
ORDER BY id;

CREATE DICTIONARY IF NOT EXISTS fengqiao.region_dict ON CLUSTER 'fengqiao'
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

CREATE TABLE IF NOT EXISTS fengqiao.events_hourly_local ON CLUSTER 'fengqiao'
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/fengqiao/events_hourly', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (county, hour, region_code, source, category, level, drill);

CREATE TABLE IF NOT EXISTS fengqiao.events_hourly ON CLUSTER 'fengqiao' AS fengqiao.events_hourly_local ENGINE = Distributed('fengqiao', fengqiao, events_hourly_local, cityHash64(substring(region_code, 1, 6)));

CREATE MATERIALIZED VIEW IF NOT EXISTS fengqiao.events_hourly_mv ON CLUSTER 'fengqiao' TO fengqiao.events_hourly_local AS
SELECT
    toStartOfHour(occurred_at) AS hour,
    region_code,
    source,
    category,
    level,
    drill,
    uniqExactState(uid) AS events,
    uniqExactStateArray(subjects) AS subjects
FROM fengqiao.events_local
GROUP BY hour, region_code, source, category, level, drill;

CREATE TABLE IF NOT EXISTS fengqiao.signals_hourly_local ON CLUSTER 'fengqiao'
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/fengqiao/signals_hourly', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (county, hour, region_code, rule_id, level, drill);

CREATE TABLE IF NOT EXISTS fengqiao.signals_hourly ON CLUSTER 'fengqiao' AS fengqiao.signals_hourly_local ENGINE = Distributed('fengqiao', fengqiao, signals_hourly_local, cityHash64(substring(region_code, 1, 6)));

CREATE MATERIALIZED VIEW IF NOT EXISTS fengqiao.signals_hourly_mv ON CLUSTER 'fengqiao' TO fengqiao.signals_hourly_local AS
SELECT
    toStartOfHour(raised_at) AS hour,
    region_code,
    rule_id,
    level,
    drill,
    uniqExactState(signal_id) AS signals
FROM fengqiao.signals_local
GROUP BY hour, region_code, rule_id, level, drill;

ALTER TABLE fengqiao.notices_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS is_update Bool DEFAULT false COMMENT 'an update in place, not a new page';

ALTER TABLE fengqiao.notices ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS is_update Bool DEFAULT false COMMENT 'an update in place, not a new page';

CREATE VIEW IF NOT EXISTS fengqiao.signal_handling ON CLUSTER 'fengqiao' AS
SELECT
    signal_id,
    countIf(kind = 'acknowledge') AS acks,
    minIf(recorded_at, kind = 'acknowledge') AS first_ack,
    groupArrayIf(recorded_at, kind = 'feedback') AS feedbacks,
    countIf(kind = 'close') AS closes,
    minIf(recorded_at, kind = 'close') AS first_close,
    countIf(kind = 'reopen') AS reopens,
    argMaxIf(kind, recorded_at, kind IN ('close', 'reopen')) AS last_state
FROM fengqiao.dispatch_actions FINAL
WHERE outcome = 'accepted'
GROUP BY signal_id;

CREATE VIEW IF NOT EXISTS fengqiao.evaluation_by_centre ON CLUSTER 'fengqiao' AS
WITH
    handled AS (
        SELECT n.signal_id AS signal_id, n.centre_code AS centre_code, n.centre_level AS centre_level,
               n.close_due AS close_due, s.raised_at AS raised_at
        FROM fengqiao.notices AS n FINAL
        JOIN (SELECT signal_id, raised_at FROM fengqiao.signals FINAL WHERE NOT drill) AS s USING (signal_id)
        WHERE n.role = 'handle' AND NOT n.drill
    )
SELECT
    h.centre_code AS centre_code,
    any(h.centre_level) AS centre_level,
    count() AS signals,
    countIf(a.acks > 0) AS acknowledged,
    quantileExactIf(0.5)(dateDiff('second', h.raised_at, a.first_ack) / 60, a.acks > 0) AS ack_p50_minutes,
    quantileExactIf(0.9)(dateDiff('second', h.raised_at, a.first_ack) / 60, a.acks > 0) AS ack_p90_minutes,
    countIf(a.closes > 0) AS closed,
    countIf(a.closes > 0 AND a.first_close <= h.close_due) AS closed_on_time,
    if(closed = 0, NULL, round(closed_on_time / closed, 3)) AS on_time_rate,
    countIf(a.last_state != 'close' AND h.close_due < now64(3)) AS overdue,
    countIf(a.reopens > 0) AS reopened,
    if(closed = 0, NULL, round(reopened / closed, 3)) AS reopen_rate
FROM handled AS h
LEFT JOIN fengqiao.signal_handling AS a USING (signal_id)
GROUP BY centre_code;

CREATE VIEW IF NOT EXISTS fengqiao.evaluation_by_department ON CLUSTER 'fengqiao' AS
WITH
    assigned AS (
        SELECT signal_id, department, min(recorded_at) AS assigned_at
        FROM fengqiao.dispatch_actions FINAL
        ARRAY JOIN departments AS department
        WHERE outcome = 'accepted' AND kind IN ('assign', 'coordinate')
        GROUP BY signal_id, department
    ),
    due AS (
        SELECT signal_id, close_due FROM fengqiao.notices FINAL WHERE role = 'handle' AND NOT drill
    )
SELECT
    d.department AS department,
    count() AS signals,
    countIf(arrayExists(t -> t >= d.assigned_at, a.feedbacks)) AS answered,
    quantileExactIf(0.5)(dateDiff('second', d.assigned_at, arrayMin(arrayFilter(t -> t >= d.assigned_at, a.feedbacks))) / 60,
                         arrayExists(t -> t >= d.assigned_at, a.feedbacks)) AS feedback_p50_minutes,
    quantileExactIf(0.9)(dateDiff('second', d.assigned_at, arrayMin(arrayFilter(t -> t >= d.assigned_at, a.feedbacks))) / 60,
                         arrayExists(t -> t >= d.assigned_at, a.feedbacks)) AS feedback_p90_minutes,
    countIf(a.closes > 0) AS closed,
    countIf(a.closes > 0 AND a.first_close <= u.close_due) AS closed_on_time,
    if(closed = 0, NULL, round(closed_on_time / closed, 3)) AS on_time_rate,
    countIf(a.last_state != 'close' AND u.close_due < now64(3)) AS overdue,
    countIf(a.reopens > 0) AS reopened,
    if(closed = 0, NULL, round(reopened / closed, 3)) AS reopen_rate
FROM assigned AS d
LEFT JOIN fengqiao.signal_handling AS a USING (signal_id)
JOIN due AS u USING (signal_id)
GROUP BY department;

CREATE TABLE IF NOT EXISTS fengqiao.late_events_local ON CLUSTER 'fengqiao'
(
    uid           String COMMENT 'the event (publisher:event_id), as in fengqiao.events',
    rule_id       LowCardinality(String),
    entity        String COMMENT 'the group of the rule it belongs to',
    region_code   FixedString(12),
    occurred_at   DateTime64(3, 'Asia/Shanghai'),
    late_by_s     Float64 COMMENT 'how far behind the latest event of its group, less window and allowed lateness',
    signal_id     String COMMENT 'the signal of its group it would have changed, empty if none',
    noted_at      DateTime64(3, 'Asia/Shanghai'),
    drill         Bool
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/late_events', '{replica}')
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (rule_id, entity, uid)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.late_events ON CLUSTER 'fengqiao' AS fengqiao.late_events_local ENGINE = Distributed('fengqiao', fengqiao, late_events_local, cityHash64(substring(region_code, 1, 6)));

ALTER TABLE fengqiao.events_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS identities Array(Tuple(id_number Nullable(String), mobile Nullable(String), name String))
    DEFAULT [] COMMENT 'per person named: the pseudonyms of their ID number, mobile and name';

ALTER TABLE fengqiao.events ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS identities Array(Tuple(id_number Nullable(String), mobile Nullable(String), name String))
    DEFAULT [] COMMENT 'per person named: the pseudonyms of their ID number, mobile and name';

CREATE TABLE IF NOT EXISTS fengqiao.person_links_local ON CLUSTER 'fengqiao'
(
    county        FixedString(6) COMMENT 'links are kept per county',
    identifier    String COMMENT 'pseudonym of an ID number, a mobile or a name, as in events.subjects',
    kind          LowCardinality(String) COMMENT 'id_number | mobile | name',
    person        String COMMENT 'the person pseudonym signals name',
    shared        Bool COMMENT 'named with two people (a household phone, two of one name): alone it names neither',
    region_code   FixedString(12) COMMENT 'where the event that made the link happened',
    linked_by     String COMMENT 'the event (uid) that made or changed the link',
    linked_at     DateTime64(3, 'Asia/Shanghai'),
    changed_at    DateTime64(3, 'Asia/Shanghai')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/person_links', '{replica}', changed_at)
ORDER BY (county, identifier)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.person_links ON CLUSTER 'fengqiao' AS fengqiao.person_links_local ENGINE = Distributed('fengqiao', fengqiao, person_links_local, cityHash64(substring(region_code, 1, 6)));

ALTER TABLE fengqiao.notices_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS entity_level LowCardinality(String) DEFAULT '' COMMENT 'community, building, person, …',
    ADD COLUMN IF NOT EXISTS entity String DEFAULT '' COMMENT 'a code, a building key, a person pseudonym, …',
    ADD COLUMN IF NOT EXISTS place String DEFAULT '' COMMENT 'the region''s names from the city down',
    ADD COLUMN IF NOT EXISTS case_url String DEFAULT '' COMMENT 'the case page on the console, empty if unknown';

ALTER TABLE fengqiao.notices ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS entity_level LowCardinality(String) DEFAULT '' COMMENT 'community, building, person, …',
    ADD COLUMN IF NOT EXISTS entity String DEFAULT '' COMMENT 'a code, a building key, a person pseudonym, …',
    ADD COLUMN IF NOT EXISTS place String DEFAULT '' COMMENT 'the region''s names from the city down',
    ADD COLUMN IF NOT EXISTS case_url String DEFAULT '' COMMENT 'the case page on the console, empty if unknown';

ALTER TABLE fengqiao.regions ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS valid_from Nullable(Date) COMMENT 'when the unit came into being, when known',
    ADD COLUMN IF NOT EXISTS valid_to Nullable(Date) COMMENT 'when it was abolished, when known',
    ADD COLUMN IF NOT EXISTS source String DEFAULT '' COMMENT 'the pack''s source, its version and the year of its codes';

ALTER TABLE fengqiao.notices_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS matters Array(LowCardinality(String)) DEFAULT [] COMMENT 'grid matters among the evidence';

ALTER TABLE fengqiao.notices ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS matters Array(LowCardinality(String)) DEFAULT [] COMMENT 'grid matters among the evidence';

ALTER TABLE fengqiao.dispatch_actions_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS to_grid Bool DEFAULT false COMMENT 'assign: handed to the grid workers (交由网格办理)';

ALTER TABLE fengqiao.dispatch_actions ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS to_grid Bool DEFAULT false COMMENT 'assign: handed to the grid workers (交由网格办理)';

ALTER TABLE fengqiao.signals_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS rule_version LowCardinality(String) DEFAULT '' COMMENT 'fingerprint of the rule, as in rule_changes';

ALTER TABLE fengqiao.signals ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS rule_version LowCardinality(String) DEFAULT '' COMMENT 'fingerprint of the rule, as in rule_changes';

CREATE TABLE IF NOT EXISTS fengqiao.rule_changes_local ON CLUSTER 'fengqiao'
(
    rule_id          LowCardinality(String),
    change           LowCardinality(String) COMMENT 'loaded (at a worker''s start) | added | changed | removed (by a reload)',
    version          LowCardinality(String) COMMENT 'the fingerprint running after the change, empty when removed',
    previous_version LowCardinality(String) COMMENT 'the fingerprint before a change or a removal',
    changed_at       DateTime64(3, 'Asia/Shanghai'),
    worker           String COMMENT 'host:pid',
    definition       String COMMENT 'the rule as JSON, without its cases'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/rule_changes', '{replica}')
PARTITION BY toYYYYMM(changed_at)
ORDER BY (rule_id, changed_at, worker, change)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.rule_changes ON CLUSTER 'fengqiao' AS fengqiao.rule_changes_local ENGINE = Distributed('fengqiao', fengqiao, rule_changes_local, cityHash64(substring(region_code, 1, 6)));

ALTER TABLE fengqiao.notices_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS joins Array(String) DEFAULT [] COMMENT 'signals this one rests on: joined to their case';

ALTER TABLE fengqiao.notices ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS joins Array(String) DEFAULT [] COMMENT 'signals this one rests on: joined to their case';

ALTER TABLE fengqiao.signals_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS silenced_by Array(String) DEFAULT [] COMMENT 'silences that held it back: no centre paged';

ALTER TABLE fengqiao.signals ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS silenced_by Array(String) DEFAULT [] COMMENT 'silences that held it back: no centre paged';

CREATE TABLE IF NOT EXISTS fengqiao.silences_local ON CLUSTER 'fengqiao'
(
    silence_id   String,
    centre       String COMMENT 'the centre that made it (4, 6, 9 or 12 digits): its jurisdiction bounds it',
    rule_id      Nullable(String),
    region_code  String COMMENT 'the region prefix it covers, any level',
    entity       Nullable(String),
    publisher    Nullable(String),
    starts_at    DateTime64(3, 'Asia/Shanghai'),
    ends_at      DateTime64(3, 'Asia/Shanghai'),
    reason       String,
    created_by   String COMMENT 'operator, key:<id>, or cli:<user>@<host>',
    created_at   DateTime64(3, 'Asia/Shanghai'),
    change       LowCardinality(String) COMMENT 'created | expired',
    changed_by   String,
    changed_at   DateTime64(3, 'Asia/Shanghai')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fengqiao/silences', '{replica}')
PARTITION BY toYYYYMM(created_at)
ORDER BY (silence_id, change)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS fengqiao.silences ON CLUSTER 'fengqiao' AS fengqiao.silences_local ENGINE = Distributed('fengqiao', fengqiao, silences_local, cityHash64(substring(region_code, 1, 6)));

ALTER TABLE fengqiao.signals_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS answered_at Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'when its answer happened, in time, though it came late';

ALTER TABLE fengqiao.signals ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS answered_at Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'when its answer happened, in time, though it came late';

ALTER TABLE fengqiao.notices_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS answered_at Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'the signal was answered in time after all: the case closes itself';

ALTER TABLE fengqiao.notices ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS answered_at Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'the signal was answered in time after all: the case closes itself';

ALTER TABLE fengqiao.events_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS topic_partition Int32 DEFAULT -1 COMMENT 'its partition of the events topic (-1: not kept)';

ALTER TABLE fengqiao.events ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS topic_partition Int32 DEFAULT -1 COMMENT 'its partition of the events topic (-1: not kept)';

ALTER TABLE fengqiao.events_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS topic_offset Int64 DEFAULT -1 COMMENT 'its offset there: the order the worker read it in';

ALTER TABLE fengqiao.events ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS topic_offset Int64 DEFAULT -1 COMMENT 'its offset there: the order the worker read it in';

ALTER TABLE fengqiao.signal_evidence_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS device String DEFAULT '' COMMENT 'the IoT device that sent it (attributes.device_id)';

ALTER TABLE fengqiao.signal_evidence ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS device String DEFAULT '' COMMENT 'the IoT device that sent it (attributes.device_id)';

ALTER TABLE fengqiao.silences_local ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS device Nullable(String) COMMENT 'an IoT device: signals resting on its alarms alone';

ALTER TABLE fengqiao.silences ON CLUSTER 'fengqiao'
    ADD COLUMN IF NOT EXISTS device Nullable(String) COMMENT 'an IoT device: signals resting on its alarms alone';

