"""Property-based fuzzing of the validation step: 4 kinds x 2,500 malformed inputs = 10,000.

Every malformed input must come out as a dead letter with a reason and its original bytes;
none may raise. Inputs are made malformed by construction: arbitrary bytes, JSON that is not
an object, valid documents with a required field removed or given a value of the wrong type,
and XML-ish text for broadcasts.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.contracts.cap import parse_cap
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import DeadLetter, Origin, Validator
from tests.helpers import T0, cap_xml, dept_alert, grid_report

V = Validator(Pseudonymiser(b"fuzz"))
WHERE = Origin("fuzz", 0, 0)
RECEIPT = {"event_id": "r-1", "broadcast_sender": "s", "broadcast_identifier": "b-1", "region_code": "210202",
           "terminals_total": 3, "terminals_played": 1, "occurred_at": "2026-11-20T08:05:00+08:00"}
VALID = {
    "grid": grid_report(1),
    "dept": dept_alert(1),
    "broadcast": parse_cap(cap_xml()),
    "receipt": RECEIPT,
}
REQUIRED = {
    "grid": ["event_id", "grid_code", "reporter", "category", "location", "occurred_at"],
    "dept": ["event_id", "department", "category", "location", "occurred_at"],
    "broadcast": ["identifier", "sender", "sent", "status", "msgType", "info"],
    "receipt": ["event_id", "broadcast_sender", "broadcast_identifier", "region_code", "terminals_total",
                "terminals_played", "occurred_at"],
}
CHECK = {
    "grid": lambda raw: V.grid_report(raw, WHERE, T0),
    "dept": lambda raw: V.dept_alert(raw, WHERE, T0),
    "broadcast": lambda raw: V.broadcast(raw, WHERE, T0, lambda key: None),
    "receipt": lambda raw: V.receipt(raw, WHERE, T0),
}
def wrong_for(value: object) -> st.SearchStrategy:
    """Values of a JSON type the field's valid value does not have (lax coercions excluded:
    an integer field takes true and 1.0, so those do not count as wrong for it)."""
    lists = st.lists(st.integers(), max_size=3)
    dicts = st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
    fractions = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f))
    if isinstance(value, str):
        return st.one_of(st.none(), st.integers(), fractions, st.booleans(), lists, dicts)
    if isinstance(value, int):
        return st.one_of(st.none(), st.text(max_size=8).filter(lambda t: not t.strip().lstrip("+-").isdigit()),
                         fractions, lists, dicts)
    if isinstance(value, dict):
        return st.one_of(st.none(), st.integers(), st.text(max_size=8), lists)
    return st.one_of(st.none(), st.integers(), st.text(max_size=8), dicts)  # lists
NOT_OBJECT = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                          lambda inner: st.lists(inner, max_size=4), max_leaves=10)


def malformed(kind: str) -> st.SearchStrategy[bytes]:
    valid = VALID[kind]
    without = st.sampled_from(REQUIRED[kind]).map(
        lambda f: json.dumps({k: v for k, v in valid.items() if k != f}, ensure_ascii=False).encode())
    retyped = st.sampled_from(REQUIRED[kind]).flatmap(
        lambda f: wrong_for(valid[f]).map(lambda v: json.dumps({**valid, f: v}, ensure_ascii=False).encode()))
    not_object = NOT_OBJECT.map(lambda v: json.dumps(v).encode())
    noise = st.binary(max_size=300)
    strategies = [without, retyped, not_object, noise]
    if kind == "broadcast":
        tags = st.sampled_from(["alert", "info", "area", "identifier", "!DOCTYPE x", "?xml"])
        xmlish = st.lists(st.tuples(tags, st.text(max_size=10)), min_size=1, max_size=6).map(
            lambda parts: "".join(f"<{t}>{x}" for t, x in parts).encode("utf-8", "replace"))
        strategies.append(xmlish)
    return st.one_of(*strategies)


@pytest.mark.parametrize("kind", list(CHECK))
@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_fuzz_validation(kind, data):
    raw = data.draw(malformed(kind), label="raw")
    result = CHECK[kind](raw)
    assert isinstance(result, DeadLetter), (kind, raw[:200])
    assert result.reason and result.raw == raw and result.message


def test_the_valid_seeds_are_valid():
    for kind, doc in VALID.items():
        raw = json.dumps(doc, ensure_ascii=False).encode()
        assert not isinstance(CHECK[kind](raw), DeadLetter), kind
