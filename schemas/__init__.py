"""fengqiao contracts: events, signals, notices, region codes, the matter catalogue, ClickHouse DDL."""
