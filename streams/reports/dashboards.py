"""Grafana dashboards as code (仪表盘): a small builder, the four dashboards, their JSON.

Each panel carries one query: SQL for the ClickHouse data source (grafana-clickhouse-datasource)
or PromQL for Prometheus, and the columns its visualisation needs. ``fengqiao dashboards`` writes
``dashboards/*.json``; the tests check that the committed JSON is what this builds, run every SQL
panel on chdb against a seeded week (macros expanded by ``expand``) and every PromQL expression
on a real Prometheus that scraped a running worker.

Jurisdiction: every SQL panel keeps to the chosen centre's region (``${centre}``); on a server,
the data source's user and its centre role keep each Grafana organisation to its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "fengqiao-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "fengqiao-prometheus"}
DIRECTORY = Path(__file__).parents[2] / "dashboards"
OPEN = "h.last_state != 'close'"  # a signal is open until its latest close or reopen is a close
SUB_REGION = ("substring(region_code, 1, multiIf(length('${centre}') = 4, 6, length('${centre}') = 6, 9, 12))")


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # Grafana visualisation: table, timeseries, barchart, stat, piechart
    query: str
    columns: tuple[str, ...] = ()  # what the SQL must return; PromQL panels return series
    timeseries: bool = False
    unit: str = ""
    width: int = 12
    height: int = 8
    description: str = ""
    case_link: bool = False  # its signal_id column opens the case on the console

    @property
    def is_sql(self) -> bool:
        return bool(self.columns)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    variables: list[dict[str, Any]] = field(default_factory=list)
    tags: tuple[str, ...] = ("fengqiao",)

    def to_json(self) -> dict[str, Any]:
        placed, x, y, row_height = [], 0, 0, 0
        for n, panel in enumerate(self.panels, 1):
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            placed.append(_panel_json(n, panel, {"x": x, "y": y, "w": panel.width, "h": panel.height}))
            x, row_height = x + panel.width, max(row_height, panel.height)
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": list(self.tags),
            "timezone": "Asia/Shanghai", "schemaVersion": 39, "version": 1, "editable": False,
            "time": {"from": "now-7d", "to": "now"}, "refresh": "1m",
            "templating": {"list": self.variables}, "panels": placed,
        }


def _panel_json(n: int, panel: Panel, grid: dict[str, int]) -> dict[str, Any]:
    if panel.is_sql:
        target = {"refId": "A", "datasource": CLICKHOUSE, "editorType": "sql", "rawSql": panel.query,
                  "format": 0 if panel.timeseries else 1, "queryType": "timeseries" if panel.timeseries else "table"}
        datasource = CLICKHOUSE
    else:
        target = {"refId": "A", "datasource": PROMETHEUS, "expr": panel.query, "range": True}
        datasource = PROMETHEUS
    overrides = [{"matcher": {"id": "byName", "options": "signal_id"}, "properties": [{"id": "links", "value": [
        {"title": "打开案件 Open the case", "url": "${console}/cases/${__value.raw}", "targetBlank": True}]}]}] \
        if panel.case_link else []
    return {"id": n, "title": panel.title, "description": panel.description, "type": panel.kind,
            "gridPos": grid, "datasource": datasource, "targets": [target],
            "fieldConfig": {"defaults": {"unit": panel.unit} if panel.unit else {}, "overrides": overrides},
            "options": {}}


CENTRE_VARIABLE = {
    "name": "centre", "label": "中心 centre", "type": "query", "datasource": CLICKHOUSE,
    "query": "SELECT substring(code, 1, multiIf(level = 'city', 4, level = 'county', 6, level = 'township', 9, 12)) "
             "AS centre FROM fengqiao.regions FINAL WHERE level IN ('city', 'county', 'township', 'community') "
             "AND status = 'active' ORDER BY centre",
    "refresh": 1, "current": {"text": "2102", "value": "2102"},
}
CONSOLE_VARIABLE = {  # where each signal's case opens: the deployment's FENGQIAO_CONSOLE_URL
    "name": "console", "label": "工作台 console", "type": "textbox", "query": "http://127.0.0.1:8470/console",
    "current": {"text": "http://127.0.0.1:8470/console", "value": "http://127.0.0.1:8470/console"},
}


def centre_dashboard() -> Dashboard:
    """The operator's view of one centre, at any of the four levels (综治中心值班)."""
    scoped = "startsWith(s.region_code, '${centre}')"
    return Dashboard("fengqiao-centre", "枫桥 · 中心值班 Centre on duty",
                     "Open signals, where they are, their evidence, what is overdue, the latest notices.", [
        Panel("未办结预警 Open signals by level", "barchart",
              "SELECT s.level AS level, count() AS open_signals FROM fengqiao.signals AS s FINAL "
              f"LEFT JOIN fengqiao.signal_handling AS h USING (signal_id) WHERE NOT s.drill AND {OPEN} AND {scoped} "
              "GROUP BY level ORDER BY multiIf(level = 'red', 1, level = 'orange', 2, level = 'yellow', 3, 4)",
              ("level", "open_signals"), width=8),
        Panel("下级区域排名 Sub-regions ranked by reports", "barchart",
              f"SELECT {SUB_REGION} AS sub_region, "
              "dictGet('fengqiao.region_dict', 'name', toUInt64(rightPad(sub_region, 12, '0'))) AS name, "
              "uniqExactMerge(events) AS events FROM fengqiao.events_hourly "
              "WHERE startsWith(region_code, '${centre}') AND $__timeFilter(hour) AND NOT drill "
              "GROUP BY sub_region ORDER BY events DESC LIMIT 20",
              ("sub_region", "name", "events"), width=16),
        Panel("证据 Evidence of open signals", "table",
              "SELECT s.signal_id AS signal_id, s.level AS level, s.rule_name AS rule, s.summary AS summary, "
              "e.occurred_at AS occurred_at, e.category AS category, e.attributes['address'] AS address "
              "FROM fengqiao.signals AS s FINAL "
              "JOIN fengqiao.signal_evidence AS ev FINAL ON ev.signal_id = s.signal_id "
              "JOIN fengqiao.events AS e FINAL ON e.uid = ev.uid "
              f"LEFT JOIN fengqiao.signal_handling AS h ON h.signal_id = s.signal_id "
              f"WHERE NOT s.drill AND {OPEN} AND {scoped} ORDER BY s.raised_at DESC, e.occurred_at LIMIT 500",
              ("signal_id", "level", "rule", "summary", "occurred_at", "category", "address"), width=24, height=10,
              case_link=True),
        Panel("逾期与督办 Overdue and supervised", "table",
              "SELECT n.signal_id AS signal_id, n.level AS level, n.centre_code AS handler, n.ack_due AS ack_due, "
              "n.close_due AS close_due, h.acks > 0 AS acknowledged, "
              "(SELECT count() FROM fengqiao.notices AS sup FINAL WHERE sup.role = 'supervise' "
              "AND sup.signal_id = n.signal_id) AS supervisions "
              "FROM fengqiao.notices AS n FINAL LEFT JOIN fengqiao.signal_handling AS h USING (signal_id) "
              "WHERE n.role = 'handle' AND NOT n.drill AND n.close_due < now64(3) AND h.last_state != 'close' "
              "AND startsWith(n.region_code, '${centre}') ORDER BY n.close_due",
              ("signal_id", "level", "handler", "ack_due", "close_due", "acknowledged", "supervisions"), width=12,
              case_link=True),
        Panel("最新通知 Latest notices to this centre", "table",
              "SELECT created_at, role, level, rule_id, summary, place, is_update, signal_id FROM fengqiao.notices "
              "FINAL WHERE centre_code = '${centre}' AND NOT drill ORDER BY created_at DESC LIMIT 50",
              ("created_at", "role", "level", "rule_id", "summary", "place", "is_update", "signal_id"), width=12,
              case_link=True),
    ], [CENTRE_VARIABLE, CONSOLE_VARIABLE])


def analyst_dashboard() -> Dashboard:
    """The analysts' overview (分析研判): trends, hot spots, categories, rule performance."""
    return Dashboard("fengqiao-analysis", "枫桥 · 分析研判 Analysis",
                     "Trends, hot spots, categories and how each rule performs, in the chosen jurisdiction.", [
        Panel("预警趋势 Signals per hour by level", "timeseries",
              "SELECT hour AS time, level, uniqExactMerge(signals) AS signals FROM fengqiao.signals_hourly "
              "WHERE startsWith(region_code, '${centre}') AND $__timeFilter(hour) AND NOT drill "
              "GROUP BY time, level ORDER BY time",
              ("time", "level", "signals"), timeseries=True, width=24),
        Panel("热点 Hot spots: communities by reports", "table",
              "SELECT region_code AS community, dictGet('fengqiao.region_dict', 'full_name', toUInt64(region_code)) "
              "AS place, uniqExactMerge(events) AS events, uniqExactMerge(subjects) AS people "
              "FROM fengqiao.events_hourly WHERE startsWith(region_code, '${centre}') AND $__timeFilter(hour) "
              "AND NOT drill GROUP BY community ORDER BY events DESC LIMIT 25",
              ("community", "place", "events", "people"), width=12),
        Panel("事项构成 Matters reported", "piechart",
              "SELECT splitByChar('.', category)[1] AS matter_group, uniqExactMerge(events) AS events "
              "FROM fengqiao.events_hourly WHERE startsWith(region_code, '${centre}') AND $__timeFilter(hour) "
              "AND NOT drill GROUP BY matter_group ORDER BY events DESC",
              ("matter_group", "events"), width=12),
        Panel("规则表现 Rule performance", "table",
              "SELECT s.rule_id AS rule, count() AS signals, countIf(s.version > 1) AS updated, "
              "countIf(h.acks > 0) AS acknowledged, countIf(h.last_state = 'close') AS closed, "
              "round(avg(s.event_count), 1) AS avg_evidence FROM fengqiao.signals AS s FINAL "
              "LEFT JOIN fengqiao.signal_handling AS h USING (signal_id) "
              "WHERE NOT s.drill AND startsWith(s.region_code, '${centre}') AND $__timeFilter(s.raised_at) "
              "GROUP BY rule ORDER BY signals DESC",
              ("rule", "signals", "updated", "acknowledged", "closed", "avg_evidence"), width=24),
    ], [CENTRE_VARIABLE])


def evaluation_dashboard() -> Dashboard:
    """Evaluation (考评) of centres and departments, from the evaluation views."""
    return Dashboard("fengqiao-evaluation", "枫桥 · 考评 Evaluation",
                     "Acknowledgement latency, on-time closure, overdue and reopened, by centre and department.", [
        Panel("签收时长 Acknowledgement latency (minutes)", "barchart",
              "SELECT centre_code, ack_p50_minutes, ack_p90_minutes FROM fengqiao.evaluation_by_centre "
              "WHERE startsWith(centre_code, '${centre}') ORDER BY ack_p90_minutes DESC",
              ("centre_code", "ack_p50_minutes", "ack_p90_minutes"), unit="m", width=12),
        Panel("按期办结率 On-time closure by centre", "barchart",
              "SELECT centre_code, on_time_rate, reopen_rate FROM fengqiao.evaluation_by_centre "
              "WHERE startsWith(centre_code, '${centre}') ORDER BY on_time_rate",
              ("centre_code", "on_time_rate", "reopen_rate"), unit="percentunit", width=12),
        Panel("考评 Centres", "table",
              "SELECT centre_code, signals, acknowledged, ack_p50_minutes, ack_p90_minutes, closed, on_time_rate, "
              "overdue, reopen_rate FROM fengqiao.evaluation_by_centre WHERE startsWith(centre_code, '${centre}') "
              "ORDER BY overdue DESC, centre_code",
              ("centre_code", "signals", "acknowledged", "ack_p50_minutes", "ack_p90_minutes", "closed",
               "on_time_rate", "overdue", "reopen_rate"), width=24),
        Panel("考评 Departments", "table",
              "SELECT department, signals, answered, feedback_p50_minutes, feedback_p90_minutes, closed, on_time_rate, "
              "overdue, reopen_rate FROM fengqiao.evaluation_by_department ORDER BY overdue DESC, department",
              ("department", "signals", "answered", "feedback_p50_minutes", "feedback_p90_minutes", "closed",
               "on_time_rate", "overdue", "reopen_rate"), width=24),
    ], [CENTRE_VARIABLE])


def health_dashboard() -> Dashboard:
    """The platform's own health (平台运行), from Prometheus."""
    def p(title: str, expr: str, unit: str = "", width: int = 8) -> Panel:
        return Panel(title, "timeseries", expr, unit=unit, width=width)

    return Dashboard("fengqiao-health", "枫桥 · 平台运行 Platform health",
                     "Throughput, dead letters, lag, latency, the sinks, webhooks and supervision.", [
        p("Events in per second, by topic", "sum by (topic) (rate(fengqiao_events_in_total[5m]))", "ops"),
        p("Dead-lettered per second, by reason",
          "sum by (reason) (rate(fengqiao_events_dead_lettered_total[5m])) or vector(0)", "ops"),
        p("Duplicates suppressed per second", "sum(rate(fengqiao_events_duplicate_total[5m])) or vector(0)", "ops"),
        p("Consumer lag by step", "sum by (step) (fengqiao_consumer_lag)", "short"),
        p("Batch time p99 by step (steps with batches)",
          "histogram_quantile(0.99, sum by (le, step) (rate(fengqiao_step_batch_seconds_bucket[5m]))) "
          "and sum by (step) (rate(fengqiao_step_batch_seconds_count[5m])) > 0", "s"),
        p("Event to notice, p50 and p99 (from ingest)",
          "histogram_quantile(0.99, sum by (le) (rate(fengqiao_event_to_notice_seconds_bucket[5m])))", "s"),
        p("Event time to notice, p99",
          "histogram_quantile(0.99, sum by (le) (rate(fengqiao_event_time_to_notice_seconds_bucket[5m])))", "s"),
        p("Signals per minute by level", "sum by (level) (rate(fengqiao_signals_total[5m])) * 60", "short"),
        p("Notices per minute by channel", "sum by (channel) (rate(fengqiao_notices_total[5m])) * 60", "short"),
        p("Webhook retries and dead letters per minute",
          "(sum(rate(fengqiao_webhook_retries_total[5m])) or vector(0)) * 60", "short"),
        p("Supervisions (督办) per hour", "(sum(rate(fengqiao_supervisions_total[1h])) or vector(0)) * 3600", "short"),
        p("ClickHouse insert p99 by table",
          # a table with no insert in the window (rule_changes after the start) has no p99, not NaN
          "histogram_quantile(0.99, sum by (le, table) (rate(fengqiao_sink_insert_seconds_bucket[5m])) "
          "and on (table) sum by (table) (rate(fengqiao_sink_insert_seconds_count[5m])) > 0)", "s"),
        p("ClickHouse rows per second by table", "sum by (table) (rate(fengqiao_sink_rows_total[5m]))", "ops"),
        p("ClickHouse insert retries per minute",
          "(sum by (table) (rate(fengqiao_sink_retries_total[5m])) or vector(0)) * 60", "short"),
        p("Rule evaluation p99 per event",
          "histogram_quantile(0.99, sum by (le) (rate(fengqiao_rule_evaluation_seconds_bucket[5m])))", "s"),
        p("Processes up", "sum by (job) (up{job=~\"fengqiao.*\"})", "short"),
        p("Signals routed to no centre, by rule, last 24 h (stored; route them by hand)",
          "sum by (rule_id) (increase(fengqiao_signals_unrouted_total[24h])) or vector(0)", "short"),
        p("Step failures started over per minute, by step and kind",
          "(sum by (step, kind) (rate(fengqiao_step_failures_total[5m])) or vector(0)) * 60", "short"),
    ])


def all_dashboards() -> list[Dashboard]:
    return [centre_dashboard(), analyst_dashboard(), evaluation_dashboard(), health_dashboard()]


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard.to_json(), ensure_ascii=False, indent=2) + "\n"


def write(directory: Path = DIRECTORY) -> list[Path]:
    out = []
    for dashboard in all_dashboards():
        path = directory / f"{dashboard.uid}.json"
        path.write_text(render(dashboard), encoding="utf-8")
        out.append(path)
    return out


def expand(sql: str, centre: str, start: datetime, end: datetime) -> str:
    """A panel's SQL as Grafana's ClickHouse plugin sends it: variables and time macros filled in."""
    def time_filter(m: re.Match[str]) -> str:
        column = m[1]
        return (f"{column} >= toDateTime({int(start.timestamp())}) AND "
                f"{column} <= toDateTime({int(end.timestamp())})")

    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", time_filter, sql)
    return sql.replace("${centre}", centre)
