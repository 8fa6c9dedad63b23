"""Warning release (预警发布): a red signal becomes a request to broadcast, for a person to approve.

fengqiao never broadcasts by itself. For a red signal it drafts a CAP 1.2 alert for the signal's
area on ``broadcast-requests``; the duty officer of the emergency broadcast system reviews it,
edits it, and publishes it through their own system, or does not. The draft is ``Restricted``
until then, and its note says so.
"""

from __future__ import annotations

from datetime import datetime

from schemas.contracts.broadcasts import EmergencyBroadcast
from schemas.contracts.levels import RiskLevel
from schemas.contracts.signals import RiskSignal, stable_id
from schemas.reference.regions import registry

SENDER = "fengqiao"
SEVERITY = {RiskLevel.red: "Extreme", RiskLevel.orange: "Severe", RiskLevel.yellow: "Moderate", RiskLevel.blue: "Minor"}


def wants_release(signal: RiskSignal) -> bool:
    """Only red signals, and never drills."""
    return signal.level is RiskLevel.red and not signal.drill


def broadcast_request(signal: RiskSignal, now: datetime) -> EmergencyBroadcast:
    """The draft alert for ``signal``: one per signal, its id derived from the signal's."""
    place = registry().full_name(signal.region_code)
    return EmergencyBroadcast.model_validate({
        "identifier": stable_id("req", signal.signal_id),
        "sender": SENDER,
        "sent": now.isoformat(),
        "status": "Actual",
        "msgType": "Alert",
        "scope": "Restricted",
        "source": f"fengqiao signal {signal.signal_id} ({signal.rule_id})",
        "note": "由枫桥平台根据红色预警信号生成的发布申请，须经值班人员审核批准后方可播发 "
                "(draft for approval; not broadcast until a person approves it)",
        "info": [{
            "category": ["Security"],
            "event": signal.rule_name,
            "urgency": "Immediate",
            "severity": SEVERITY[signal.level],
            "certainty": "Likely",
            "senderName": "枫桥社会安全风险预警平台",
            "headline": f"{place}{signal.level.chinese}预警",
            "description": signal.summary,
            "parameter": [{"valueName": "预警级别", "value": signal.level.chinese}],
            "area": [{"areaDesc": place,
                      "geocode": [{"valueName": "行政区划代码", "value": signal.region_code}]}],
        }],
    })
