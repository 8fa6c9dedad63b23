"""The topics of fengqiao (主题目录): names, partitions for a city, what keys them. One place for
all of them; a deployment's topology scales the partitions (``streams.runtime.topics.Topology``).
"""

from __future__ import annotations

from streams.runtime.topics import TopicSpec

GRID_REPORTS = TopicSpec("grid-reports", 4, "grid code", "网格员上报, JSON GridReport")
EMERGENCY_BROADCASTS = TopicSpec("emergency-broadcasts", 2, "sender", "应急广播, CAP 1.2 XML or JSON")
BROADCAST_RECEIPTS = TopicSpec("broadcast-receipts", 2, "region code", "播发回执, JSON BroadcastReceipt")
DEPT_ALERTS = TopicSpec("dept-alerts", 4, "department code", "部门预警, JSON DepartmentAlert")
EVENTS = TopicSpec("events", 8, "county code (6 digits)", "normalised, pseudonymised events")
REGIONAL_EVENTS = TopicSpec("events-regional", 4, "group of a city-wide rule (a city code)",
                            "events again, repartitioned for rules grouped coarser than a county (重分区)")
DEAD_LETTERS = TopicSpec("dead-letters", 2, "source topic", "invalid input: original bytes and the reason")
SIGNALS = TopicSpec("signals", 4, "signal id", "risk signals; later versions replace earlier ones")
CENTRE_NOTICES = TopicSpec("centre-notices", 4, "centre code", "notices to the four levels of centres")
DRILL_NOTICES = TopicSpec("drill-notices", 2, "centre code", "notices of drills and tests (演练): never a live centre's")
BROADCAST_REQUESTS = TopicSpec("broadcast-requests", 2, "signal id", "drafts of CAP alerts for red signals, to approve")
DISPATCH_ACTIONS = TopicSpec("dispatch-actions", 4, "signal id", "acknowledge, assign, feedback, close")

INPUTS = (GRID_REPORTS, EMERGENCY_BROADCASTS, BROADCAST_RECEIPTS, DEPT_ALERTS)
ALL = (*INPUTS, EVENTS, REGIONAL_EVENTS, DEAD_LETTERS, SIGNALS, CENTRE_NOTICES, DRILL_NOTICES, DISPATCH_ACTIONS, BROADCAST_REQUESTS)
