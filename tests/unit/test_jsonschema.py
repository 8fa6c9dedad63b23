"""The JSON Schema files publishers read are the models, and real documents pass them."""

import json

import pytest
from jsonschema import Draft202012Validator

from schemas.contracts.cap import parse_cap
from schemas.export import DIRECTORY, rendered
from tests.helpers import cap_xml, dept_alert, grid_report


def test_committed_schema_files_match_the_models():
    expected = rendered()
    committed = {p.name: p.read_text("utf-8") for p in DIRECTORY.glob("*.schema.json")}
    assert set(committed) == set(expected), "run: python -m schemas.export"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} differs from its model: run python -m schemas.export"


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("grid-report", grid_report(1)),
        ("department-alert", dept_alert(1)),
        ("emergency-broadcast", parse_cap(cap_xml())),
    ],
)
def test_documents_validate_against_the_published_schema(name, document):
    schema = json.loads((DIRECTORY / f"{name}.schema.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate(document)
    bad = {**document, "unexpected": 1}
    assert not Draft202012Validator(schema).is_valid(bad)


def test_the_catalogue_is_in_the_grid_report_schema():
    schema = json.loads((DIRECTORY / "grid-report.schema.json").read_text("utf-8"))
    assert "dispute.neighbour" in schema["properties"]["category"]["enum"]
    assert not Draft202012Validator(schema).is_valid(grid_report(1, category="party.recruitment"))


@pytest.mark.parametrize(("region", "valid"), [
    ("210202001004", True), ("210202000000", True),  # a community; a whole district
    ("210200000000", True), ("210000000000", True),  # a city-wide and a province-wide warning
    ("210299001001", False), ("110101001001", False),  # a county, a city not in the deployment's table
])
def test_the_schema_says_which_places_a_department_may_name(region, valid):
    schema = json.loads((DIRECTORY / "department-alert.schema.json").read_text("utf-8"))
    alert = dept_alert(1, community=region)
    assert Draft202012Validator(schema).is_valid(alert) == valid


def test_the_schema_says_each_department_s_categories():
    schema = json.loads((DIRECTORY / "department-alert.schema.json").read_text("utf-8"))
    assert Draft202012Validator(schema).is_valid(dept_alert(1, department="police", category="police_call_110"))
    assert not Draft202012Validator(schema).is_valid(dept_alert(1, department="weather", category="police_call_110"))
