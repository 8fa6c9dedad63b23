"""A case's file (案卷) as ClickHouse holds it: the signal's latest version and its evidence, each
event with its masked text, in time order. Read for the console's case page and case sheet; the
caller has already checked that the case lies in the reader's jurisdiction.
"""

from __future__ import annotations

from typing import Any

from streams.store.clickhouse import Store

SIGNAL = """
SELECT signal_id, version, rule_id, rule_name, level, entity_level, entity, region_code, window_start,
       window_end, raised_at, updated_at, event_count, summary, rule_chain
FROM fengqiao.signals FINAL WHERE signal_id = {id:String} LIMIT 1
"""
EVIDENCE = """
SELECT e.uid AS uid, e.source AS source, e.category AS category, e.occurred_at AS occurred_at,
       ev.text AS text, ev.region_code AS region_code
FROM (SELECT * FROM fengqiao.signal_evidence FINAL WHERE signal_id = {id:String}) AS e
LEFT JOIN (SELECT uid, text, region_code FROM fengqiao.events FINAL
           WHERE uid IN (SELECT uid FROM fengqiao.signal_evidence WHERE signal_id = {id:String})) AS ev
       ON ev.uid = e.uid
ORDER BY e.occurred_at, e.uid
"""


def case_file(store: Store, signal_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the signal's latest version or None if not stored yet, its evidence oldest first)."""
    signal = store.query(SIGNAL, {"id": signal_id})
    evidence = store.query(EVIDENCE, {"id": signal_id}) if signal else []
    return (signal[0] if signal else None), evidence
