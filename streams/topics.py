"""The topics of fengqiao (主题目录): names, partitions for a city, what keys them, how long their
records are kept. One place for all of them; a deployment's topology scales the partitions and
sets the copies (``streams.runtime.topics.Topology``), and every topic fengqiao creates carries
these configs, whatever the cluster's defaults.

Retention: the inputs and the events a week (room to replay after an outage; ClickHouse keeps
the events); dead letters, signals, notices, the centres' actions, warning drafts and person
links 30 days (ClickHouse keeps them too, and the dispatch desk keeps its cases on a compacted
topic of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from streams.runtime.topics import TopicSpec

WEEK, MONTH = timedelta(days=7), timedelta(days=30)

GRID_REPORTS = TopicSpec("grid-reports", 4, "grid code", "网格员上报, JSON GridReport", retention=WEEK)
EMERGENCY_BROADCASTS = TopicSpec("emergency-broadcasts", 2, "sender", "应急广播, CAP 1.2 XML or JSON", retention=WEEK)
BROADCAST_RECEIPTS = TopicSpec("broadcast-receipts", 2, "region code", "播发回执, JSON BroadcastReceipt",
                               retention=WEEK)
DEPT_ALERTS = TopicSpec("dept-alerts", 4, "department code", "部门预警, JSON DepartmentAlert", retention=WEEK)
EVENTS = TopicSpec("events", 8, "county code (6 digits)", "normalised, pseudonymised events", retention=WEEK)
REGIONAL_EVENTS = TopicSpec("events-regional", 4, "group of a city-wide rule (a city code)",
                            "events again, repartitioned for rules grouped coarser than a county (重分区)",
                            retention=WEEK)
DEAD_LETTERS = TopicSpec("dead-letters", 2, "source topic", "invalid input: original bytes and the reason",
                         retention=MONTH)
SIGNALS = TopicSpec("signals", 4, "signal id", "risk signals; later versions replace earlier ones", retention=MONTH)
CENTRE_NOTICES = TopicSpec("centre-notices", 4, "centre code", "notices to the four levels of centres", retention=MONTH)
DRILL_NOTICES = TopicSpec("drill-notices", 2, "centre code", "notices of drills and tests (演练): never a live centre's",
                          retention=MONTH)
BROADCAST_REQUESTS = TopicSpec("broadcast-requests", 2, "signal id", "drafts of CAP alerts for red signals, to approve",
                               retention=MONTH)
LATE_EVENTS = TopicSpec("late-events", 2, "event uid", "events too late for a rule's windows: counted and kept, "
                        "with the signal they would have changed", retention=MONTH)
PERSON_LINKS = TopicSpec("person-links", 2, "identifier pseudonym", "同人关联: which person pseudonym each identifier "
                         "pseudonym names in its county, as links are made (pseudonyms only)", retention=MONTH)
DISPATCH_ACTIONS = TopicSpec("dispatch-actions", 4, "signal id", "every action on a case, accepted or refused, "
                             "with its actor (留痕); the desk's supervisions", retention=MONTH)
RULE_CHANGES = TopicSpec("rule-changes", 1, "rule id", "规则版本留痕: each rule a worker loaded at start, and what "
                         "each reload added, changed or removed, with its fingerprint", retention=MONTH)
SILENCES = TopicSpec("silences", 1, "silence id", "静默: each silence as made and as expired, the latest kept per "
                     "id (every worker reads it whole)", compacted=True)

# An event about a region wider than a county (a city, a province) is on ``events`` once under its
# own key, stored and correlated at its own level, and again under each county it covers, with this
# header naming the county: there it reaches the places whose state lives in that county's
# partition (a city-wide cold-wave warning, every registered elder of the city). Copies are not stored.
REACH_HEADER = "fengqiao-reach"


def reaching(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The county a copy of a wide-area event reaches, from its record's headers, or None."""
    return next((v.decode() for k, v in headers or () if k == REACH_HEADER), None)


INPUTS = (GRID_REPORTS, EMERGENCY_BROADCASTS, BROADCAST_RECEIPTS, DEPT_ALERTS)
ALL = (*INPUTS, EVENTS, REGIONAL_EVENTS, DEAD_LETTERS, SIGNALS, CENTRE_NOTICES, DRILL_NOTICES, DISPATCH_ACTIONS,
       LATE_EVENTS, PERSON_LINKS, RULE_CHANGES, SILENCES,
       BROADCAST_REQUESTS)
