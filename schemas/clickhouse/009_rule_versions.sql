-- 009 rule versions (规则版本留痕, issue 17): every signal carries the fingerprint of the rule that
-- raised it, and every pack a worker loads or reloads is recorded rule by rule, so an analyst can
-- say which version of a rule put a community on yellow and since when that version ran.

ALTER TABLE fengqiao.signals
    ADD COLUMN IF NOT EXISTS rule_version LowCardinality(String) DEFAULT '' COMMENT 'fingerprint of the rule, as in rule_changes';

CREATE TABLE IF NOT EXISTS fengqiao.rule_changes
(
    rule_id          LowCardinality(String),
    change           LowCardinality(String) COMMENT 'loaded (at a worker''s start) | added | changed | removed (by a reload)',
    version          LowCardinality(String) COMMENT 'the fingerprint running after the change, empty when removed',
    previous_version LowCardinality(String) COMMENT 'the fingerprint before a change or a removal',
    changed_at       DateTime64(3, 'Asia/Shanghai'),
    worker           String COMMENT 'host:pid',
    definition       String COMMENT 'the rule as JSON, without its cases'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(changed_at)
ORDER BY (rule_id, changed_at, worker, change)
SETTINGS non_replicated_deduplication_window = 1000;
