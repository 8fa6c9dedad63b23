"""Department alerts, CAP broadcasts (XML and JSON), terminal receipts through validation."""

import json

import pytest

from schemas.contracts.broadcasts import EmergencyBroadcast
from schemas.contracts.cap import parse_cap
from schemas.contracts.levels import RiskLevel
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import Accepted, DeadLetter, Origin, Validator
from tests.helpers import COMMUNITY, T0, cap_xml, dept_alert, id_number

V = Validator(Pseudonymiser(b"test-key"))
WHERE = Origin("x", 0, 1)
NOTHING_KNOWN = lambda key: None  # noqa: E731


def raw(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def test_department_alert_is_namespaced_and_pseudonymised():
    alert = dept_alert(1)
    alert["location"] |= {"lat": 38.91, "lon": 121.61}
    result = V.dept_alert(raw(alert), WHERE, T0)
    assert isinstance(result, Accepted)
    [event] = result.events
    assert (event.publisher, event.category, event.level) == ("police", "police.police_call_110", RiskLevel.yellow)
    assert event.uid == "police:police-000001" == result.uid
    dumped = event.model_dump_json()
    assert "张伟" not in dumped and "13812345678" not in dumped and id_number(1) not in dumped
    assert event.attributes["department_name"] == "公安"
    assert (event.attributes["lat"], event.attributes["lon"]) == ("38.91", "121.61")


@pytest.mark.parametrize(
    ("alert", "reason", "field"),
    [
        (dept_alert(1, department="police", category="cold_wave"), "not_in_catalogue", "category"),
        (dept_alert(1, department="tax"), "invalid_field", "department"),
        (dept_alert(1, severity="purple"), "invalid_field", "severity"),
    ],
)
def test_department_alert_rejections(alert, reason, field):
    letter = V.dept_alert(raw(alert), WHERE, T0)
    assert isinstance(letter, DeadLetter) and (letter.reason, letter.field) == (reason, field)


def test_cap_xml_and_its_json_form_are_the_same_broadcast():
    from_xml = EmergencyBroadcast.model_validate(parse_cap(cap_xml()))
    from_json = EmergencyBroadcast.model_validate_json(from_xml.model_dump_json(by_alias=True))
    assert from_xml == from_json
    assert from_xml.info[0].level is RiskLevel.orange and not from_xml.drill


def test_a_broadcast_becomes_one_event_per_area_code():
    result = V.broadcast(cap_xml(geocodes=("210202", "210203001001")), WHERE, T0, NOTHING_KNOWN)
    assert isinstance(result, Accepted) and result.uid == "dalian-ebs:DL-EBS-0001"
    assert [e.region_code for e in result.events] == ["210202000000", "210203001001"]
    assert {e.category for e in result.events} == {"broadcast.alert"}
    assert all(e.level is RiskLevel.orange and e.attributes["event"] == "寒潮" for e in result.events)
    assert result.remember == ("dalian-ebs,DL-EBS-0001", {"regions": ["210202000000", "210203001001"],
                                                          "event": "寒潮"})


@pytest.mark.parametrize(("severity", "level"), [("Extreme", RiskLevel.red), ("Minor", RiskLevel.blue)])
def test_level_from_severity_when_no_level_parameter(severity, level):
    result = V.broadcast(cap_xml(level="", severity=severity), WHERE, T0, NOTHING_KNOWN)
    assert result.events[0].level is level


def test_exercises_and_tests_are_drills():
    for status in ("Exercise", "Test"):
        result = V.broadcast(cap_xml(status=status), WHERE, T0, NOTHING_KNOWN)
        assert all(e.drill for e in result.events)


def test_update_and_cancel_resolve_their_references():
    known = {"dalian-ebs,DL-EBS-0001": {"regions": ["210202000000"], "event": "寒潮"}}
    update = V.broadcast(cap_xml("DL-EBS-0002", "Update", references="dalian-ebs,DL-EBS-0001,2026-11-20T08:00:00+08:00"),
                         WHERE, T0, known.get)
    assert update.events[0].attributes["references_resolved"] == "dalian-ebs,DL-EBS-0001"
    cancel = {"identifier": "DL-EBS-0003", "sender": "dalian-ebs", "sent": "2026-11-20T12:00:00+08:00",
              "status": "Actual", "msgType": "Cancel",
              "references": ["dalian-ebs,DL-EBS-0001,2026-11-20T08:00:00+08:00"]}
    result = V.broadcast(raw(cancel), WHERE, T0, known.get)
    assert [e.region_code for e in result.events] == ["210202000000"] and result.remember is None
    assert result.events[0].category == "broadcast.cancel"
    orphan = V.broadcast(raw(cancel), WHERE, T0, NOTHING_KNOWN)
    assert isinstance(orphan, DeadLetter) and orphan.reason == "unresolved_reference"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (cap_xml(msg_type="Update"), "invalid_field"),  # an Update must name what it updates
        (cap_xml(geocodes=("999999",)), "unknown_region"),
        (cap_xml(status="Draft"), "invalid_field"),
        (b"<alert><identifier>x</identifier>", "invalid_xml"),
        (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>', "not_cap"),
    ],
)
def test_broadcast_rejections(body, reason):
    letter = V.broadcast(body, WHERE, T0, NOTHING_KNOWN)
    assert isinstance(letter, DeadLetter) and letter.reason == reason and letter.raw == body


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol4;</identifier></alert>"""


@pytest.mark.parametrize("body", [XXE, BILLION_LAUGHS], ids=["xxe", "billion-laughs"])
def test_hostile_xml_is_refused_not_parsed(body):
    letter = V.broadcast(body, WHERE, T0, NOTHING_KNOWN)
    assert isinstance(letter, DeadLetter) and letter.reason == "xml_forbidden"
    assert "root:" not in letter.message and "lol" not in letter.message


def test_receipts():
    receipt = {"event_id": "r-1", "broadcast_sender": "dalian-ebs", "broadcast_identifier": "DL-EBS-0001",
               "region_code": COMMUNITY, "terminals_total": 12, "terminals_played": 9,
               "occurred_at": "2026-11-20T08:05:00+08:00"}
    result = V.receipt(raw(receipt), WHERE, T0)
    [event] = result.events
    assert event.attributes == {"broadcast": "dalian-ebs,DL-EBS-0001", "terminals_total": "12",
                                "terminals_played": "9", "complete": "false"}
    too_many = V.receipt(raw({**receipt, "terminals_played": 13}), WHERE, T0)
    assert isinstance(too_many, DeadLetter) and too_many.reason == "invalid_field"

