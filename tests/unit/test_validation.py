import json

import pytest

from schemas.contracts.events import NormalisedEvent, Source
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import Accepted, DeadLetter, Origin, Validator
from streams.worker.sinks import dead_letter_row
from tests.helpers import T0, grid_report, id_number

V = Validator(Pseudonymiser(b"test-key"))


def check(report: dict | bytes) -> NormalisedEvent | DeadLetter:
    raw = report if isinstance(report, bytes) else json.dumps(report, ensure_ascii=False).encode()
    result = V.grid_report(raw, Origin("grid-reports", 2, 41), T0)
    if isinstance(result, Accepted):
        [event] = result.events
        assert result.uid == event.uid
        return event
    return result


def test_a_valid_report_is_normalised_without_identifiers_in_clear():
    event = check(grid_report(1))
    assert isinstance(event, NormalisedEvent)
    assert event.source is Source.grid_report and event.uid == "grid:t-000001"
    assert event.region_code == "210202001004" and event.grid_code == "210202001004001"
    assert len(event.subjects) == 2 and all(s.startswith("p-") for s in event.subjects)
    dumped = event.model_dump_json()
    for secret in ("张伟", "李娜", "13812345678", "13987654321", id_number(2)):
        assert secret not in dumped
    assert event.partition_key == b"210202"


def test_event_time_without_offset_is_beijing_time():
    event = check(grid_report(1, occurred_at="2026-11-20T09:00:00"))
    assert event.occurred_at == T0


@pytest.mark.parametrize(
    ("mutate", "reason", "field"),
    [
        (lambda r: r.update(category="party.planning"), "not_in_catalogue", "category"),
        (lambda r: r.pop("reporter"), "invalid_field", "reporter"),
        (lambda r: r.update(grid_code="21020200100400"), "invalid_field", "grid_code"),
        (lambda r: r["location"].update(region_code="210299001001"), "unknown_region", "location.region_code"),
        (lambda r: r.update(occurred_at="yesterday"), "invalid_field", "occurred_at"),
        (lambda r: r.update(surprise=1), "invalid_field", "surprise"),
        (lambda r: r["location"].update(region_code="210202001002"), "invalid_field", ""),
    ],
)
def test_invalid_reports_are_dead_lettered_with_reason_and_field(mutate, reason, field):
    report = grid_report(1)
    mutate(report)
    raw = json.dumps(report, ensure_ascii=False).encode()
    letter = check(raw)
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.field) == (reason, field)
    assert letter.raw == raw and letter.dlq_id == "grid-reports/2/41" and letter.message


def test_abolished_region_names_its_successor():
    report = grid_report(1)
    report["location"]["region_code"] = "210282000000"
    letter = check(report)
    assert letter.reason == "unknown_region" and "210214000000" in letter.message


@pytest.mark.parametrize(("raw", "reason"), [(b"{not json", "invalid_json"), (b"\xff\xfe{}", "invalid_encoding"),
                                             (b"[]", "invalid_field"), (b"", "invalid_json")])
def test_garbage_is_kept_whole(raw, reason):
    letter = check(raw)
    assert isinstance(letter, DeadLetter) and letter.reason == reason and letter.raw == raw


def test_dead_letter_headers_round_trip_and_row_masks_identifiers():
    report = grid_report(1, category="nope")
    letter = check(report)
    again = DeadLetter.from_headers(letter.raw, dict(letter.headers()))
    assert again == letter
    row = dead_letter_row(letter, V.pseudonymiser, T0)
    assert "13812345678" not in row["raw_preview"] and id_number(2) not in row["raw_preview"]
    assert len(row["raw_sha256"]) == 64
