-- 011 silences (静默, issue 17): a signal held back by a silence is stored with the silences that
-- held it, and every silence made or expired is kept, change by change, with who and why (留痕).

ALTER TABLE fengqiao.signals
    ADD COLUMN IF NOT EXISTS silenced_by Array(String) DEFAULT [] COMMENT 'silences that held it back: no centre paged';

CREATE TABLE IF NOT EXISTS fengqiao.silences
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (silence_id, change)
SETTINGS non_replicated_deduplication_window = 1000;
