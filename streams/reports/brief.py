"""Situation brief (分析研判报告): one HTML page for a centre and a period, with its charts.

``fengqiao brief --centre 210202 --from 2026-11-16 --to 2026-11-22`` reads the store (scoped to
the centre's jurisdiction like every query) and writes a self-contained page: the figures of
the period, reports and signals per day, hot spots below the centre, the rules that fired, and
what is overdue. Charts are inline SVG: the page opens anywhere, offline, and prints.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from schemas.contracts.levels import RiskLevel
from schemas.reference.regions import level_of_centre, pad, registry
from streams.store.clickhouse import Store

LEVEL_COLOURS = {"red": "#d62728", "orange": "#ff7f0e", "yellow": "#e6c619", "blue": "#1f77b4"}
EVENT_COLOUR = "#2ca02c"
HOTSPOT_COLOUR = "#9467bd"
SCOPE = "startsWith(region_code, {centre:String})"
PERIOD = "{start:DateTime('Asia/Shanghai')} AND {end:DateTime('Asia/Shanghai')}"


@dataclass(frozen=True)
class BriefData:
    centre: str
    place: str
    start: date
    end: date  # inclusive
    totals: dict[str, Any]
    days: list[date]
    events_per_day: dict[date, int]
    signals_per_day: dict[tuple[date, str], int]
    hot_spots: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    overdue: list[dict[str, Any]]


def gather(store: Store, centre: str, start: date, end: date, now: datetime) -> BriefData:
    """Everything the brief shows, from the store, within the centre's jurisdiction."""
    level_of_centre(centre)
    params = {"centre": centre, "start": f"{start} 00:00:00", "end": f"{end + timedelta(days=1)} 00:00:00",
              "now": now.strftime("%Y-%m-%d %H:%M:%S")}
    q = store.query
    events = {date.fromisoformat(r["day"]): int(r["n"]) for r in q(
        f"SELECT toDate(hour) AS day, uniqExactMerge(events) AS n FROM fengqiao.events_hourly "
        f"WHERE {SCOPE} AND NOT drill AND hour >= {{start:DateTime('Asia/Shanghai')}} "
        f"AND hour < {{end:DateTime('Asia/Shanghai')}} GROUP BY day", params)}
    signals = {(date.fromisoformat(r["day"]), r["level"]): int(r["n"]) for r in q(
        f"SELECT toDate(hour) AS day, level, uniqExactMerge(signals) AS n FROM fengqiao.signals_hourly "
        f"WHERE {SCOPE} AND NOT drill AND hour >= {{start:DateTime('Asia/Shanghai')}} "
        f"AND hour < {{end:DateTime('Asia/Shanghai')}} GROUP BY day, level", params)}
    sub = {4: 6, 6: 9}.get(len(centre), 12)
    hot = q(f"SELECT substring(region_code, 1, {sub}) AS region, uniqExactMerge(events) AS events "
            f"FROM fengqiao.events_hourly WHERE {SCOPE} AND NOT drill AND hour >= {{start:DateTime('Asia/Shanghai')}} "
            f"AND hour < {{end:DateTime('Asia/Shanghai')}} GROUP BY region ORDER BY events DESC, region LIMIT 10",
            params)
    for row in hot:
        row["name"] = registry().full_name(pad(row["region"])) if pad(row["region"]) in registry() else row["region"]
    rules = q("SELECT rule_name AS rule, count() AS signals, argMax(level, multiIf(level = 'red', 4, "
              "level = 'orange', 3, level = 'yellow', 2, 1)) AS top_level FROM fengqiao.signals FINAL "
              f"WHERE {SCOPE} AND NOT drill AND raised_at >= {{start:DateTime('Asia/Shanghai')}} "
              f"AND raised_at < {{end:DateTime('Asia/Shanghai')}} GROUP BY rule ORDER BY signals DESC, rule", params)
    overdue = q("SELECT n.signal_id AS signal_id, n.level AS level, n.centre_code AS handler, n.summary AS summary, "
                "n.close_due AS close_due FROM fengqiao.notices AS n FINAL "
                "LEFT JOIN fengqiao.signal_handling AS h USING (signal_id) WHERE n.role = 'handle' AND NOT n.drill "
                "AND startsWith(n.region_code, {centre:String}) AND h.last_state != 'close' "
                "AND n.close_due < {now:DateTime('Asia/Shanghai')} ORDER BY n.close_due LIMIT 50", params)
    totals = {"events": sum(events.values()), "signals": sum(signals.values()),
              "overdue": len(overdue),
              "supervisions": int(q("SELECT count() AS n FROM fengqiao.notices FINAL WHERE role = 'supervise' "
                                    f"AND {SCOPE} AND created_at >= {{start:DateTime('Asia/Shanghai')}} "
                                    f"AND created_at < {{end:DateTime('Asia/Shanghai')}}", params)[0]["n"])}
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    place = registry().full_name(pad(centre)) if pad(centre) in registry() else centre
    return BriefData(centre, place, start, end, totals, days, events, signals, hot, rules, overdue)


def bar_chart(title: str, labels: list[str], series: list[tuple[str, str, list[int]]], width: int = 720,
              height: int = 260) -> str:
    """A stacked bar chart as inline SVG: ``series`` are (name, colour, one value per label)."""
    left, bottom, top = 40, 40, 30
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    peak = max(totals, default=0) or 1
    slot = (width - left - 10) / max(len(labels), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}"><text x="{left}" y="18" font-size="14">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#888"/>',
             f'<text x="4" y="{top + 10}" font-size="11">{peak}</text>']
    for i, label in enumerate(labels):
        x, base = left + i * slot + slot * 0.15, height - bottom
        for name, colour, values in series:
            h = (height - bottom - top) * values[i] / peak
            if h > 0:
                base -= h
                parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                             f'fill="{colour}"><title>{html.escape(name)} {values[i]}</title></rect>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" font-size="11">{html.escape(label)}</text>')
    legend_x = left
    for name, colour, _ in series:
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="{height - 5}" font-size="11">{html.escape(name)}</text>')
        legend_x += 90
    return "".join(parts) + "</svg>"


def table(rows: list[dict[str, Any]], empty: str) -> str:
    if not rows:
        return f"<p class='empty'>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(data: BriefData, generated: datetime) -> str:
    labels = [d.strftime("%m-%d") for d in data.days]
    trend = bar_chart("每日上报 Reports per day", labels,
                      [("reports", EVENT_COLOUR, [data.events_per_day.get(d, 0) for d in data.days])])
    levels = [lv.value for lv in sorted(RiskLevel, reverse=True)]
    signals = bar_chart("每日预警 Signals per day by level", labels,
                        [(lv, LEVEL_COLOURS[lv], [data.signals_per_day.get((d, lv), 0) for d in data.days])
                         for lv in levels])
    hot = bar_chart("热点 Hot spots", [r["region"][-3:] for r in data.hot_spots],
                    [("reports", HOTSPOT_COLOUR, [int(r["events"]) for r in data.hot_spots])])
    t = data.totals
    figures = "".join(f"<div class='figure'><b>{v}</b><span>{k}</span></div>" for k, v in (
        ("上报 reports", t["events"]), ("预警 signals", t["signals"]), ("逾期 overdue", t["overdue"]),
        ("督办 supervisions", t["supervisions"])))
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>研判报告 {html.escape(data.place)} {data.start}–{data.end}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 24px; color: #222; }}
.figure {{ display: inline-block; margin: 0 24px 16px 0; }} .figure b {{ font-size: 28px; display: block; }}
table {{ border-collapse: collapse; margin: 8px 0 24px; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
.empty {{ color: #888; }} section {{ margin-bottom: 24px; }}
</style></head><body>
<h1>社会安全风险研判报告</h1>
<p>{html.escape(data.place)}（{html.escape(data.centre)}）· {data.start} 至 {data.end} ·
生成于 {generated:%Y-%m-%d %H:%M}（人员均为化名 pseudonymised）</p>
<section>{figures}</section>
<section>{trend}</section>
<section>{signals}</section>
<section><h2>热点区域 Hot spots</h2>{hot}{table(data.hot_spots, "无上报 no reports")}</section>
<section><h2>规则 Rules that fired</h2>{table(data.rules, "无预警 no signals")}</section>
<section><h2>逾期未办结 Overdue</h2>{table(data.overdue, "无逾期 nothing overdue")}</section>
</body></html>
"""
