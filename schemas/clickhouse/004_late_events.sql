-- 004 late events (迟到事件): an event that reached a rule after its windows had closed (a grid
-- app that synced a day late). It is stored in fengqiao.events as every event is; here, once per
-- rule it came too late for, with how late, and the signal of its group it would have joined.
CREATE TABLE IF NOT EXISTS fengqiao.late_events
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (rule_id, entity, uid)
SETTINGS non_replicated_deduplication_window = 1000;
