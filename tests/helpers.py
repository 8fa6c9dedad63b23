"""Test helpers: grid reports as the grid back-end publishes them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from schemas.events import BEIJING
from streams.identity import check_digit

COMMUNITY = "210202001001"  # 大连市中山区 模拟街道01 模拟社区01 (synthetic)
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
