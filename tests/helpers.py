"""Test helpers: grid reports as the grid back-end publishes them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from schemas.contracts.events import BEIJING
from streams.intake.identity import check_digit

# Shapes of identifiers in clear, for the tests' own scans of what fengqiao wrote (independent of
# streams.intake.masking, which finds more forms than these).
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx])(?![0-9A-Za-z])")
MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d[- ]?\d{4}[- ]?\d{4})(?!\d)")
COMMUNITY = "210202001004"  # 大连市中山区 海军广场街道 春德社区居委会
OTHER_COMMUNITY = "210202001002"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=BEIJING)


def id_number(serial: int = 1, county: str = "210202") -> str:
    body = f"{county}19800101{serial:03d}"
    return body + check_digit(body)


def grid_report(n: int, community: str = COMMUNITY, category: str = "dispute.neighbour",
                at: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    report = {
        "event_id": f"t-{n:06d}",
        "grid_code": f"{community}001",
        "reporter": "GW0001",
        "category": category,
        "parties": [
            {"name": "张伟", "id_number": id_number(n % 7 + 1), "phone": "13812345678"},
            {"name": "李娜", "phone": "13987654321"},
        ],
        "location": {"region_code": community, "address": "5号楼2单元"},
        "text": f"张伟与李娜因噪音发生争执，张伟电话13812345678，身份证{id_number(n % 7 + 1)}",
        "occurred_at": (at or T0 + timedelta(minutes=n)).isoformat(),
    }
    report.update(overrides)
    return report


def dept_alert(n: int, department: str = "police", category: str = "police_call_110",
               community: str = COMMUNITY, **overrides: Any) -> dict[str, Any]:
    alert = {
        "event_id": f"{department}-{n:06d}",
        "department": department,
        "category": category,
        "location": {"region_code": community, "address": "5号楼2单元"},
        "subjects": [{"name": "张伟", "id_number": id_number(1), "phone": "13812345678"}],
        "severity": "yellow",
        "text": "报警人称张伟与邻居发生肢体冲突，电话13812345678",
        "attributes": {"call_id": f"110-{n}"},
        "occurred_at": (T0 + timedelta(minutes=n)).isoformat(),
    }
    alert.update(overrides)
    return alert


def cap_xml(identifier: str = "DL-EBS-0001", msg_type: str = "Alert", status: str = "Actual",
            geocodes: tuple[str, ...] = ("210202",), references: str = "", level: str = "橙色",
            severity: str = "Severe", sent: str = "2026-11-20T08:00:00+08:00") -> bytes:
    refs = f"<references>{references}</references>" if references else ""
    areas = "".join(f"<geocode><valueName>行政区划代码</valueName><value>{g}</value></geocode>" for g in geocodes)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>dalian-ebs</sender>
  <sent>{sent}</sent>
  <status>{status}</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>{refs}
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>寒潮</event>
    <urgency>Expected</urgency>
    <severity>{severity}</severity>
    <certainty>Likely</certainty>
    <headline>大连市气象台发布寒潮橙色预警</headline>
    <parameter><valueName>预警级别</valueName><value>{level}</value></parameter>
    <area><areaDesc>中山区</areaDesc><polygon>38.9,121.6 38.9,121.7 39.0,121.7 38.9,121.6</polygon>{areas}</area>
  </info>
</alert>""".encode()
