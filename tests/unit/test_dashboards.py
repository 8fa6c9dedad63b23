"""The dashboards as code: the committed JSON is what the builder makes, and every ClickHouse
panel's SQL runs on chdb against the seeded week and returns the columns its panel expects."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from schemas.contracts.events import BEIJING
from streams.reports.dashboards import CENTRE_VARIABLE, DIRECTORY, all_dashboards, expand, render
from tests.seed import seeded_store

SQL_PANELS = [(d.uid, p) for d in all_dashboards() for p in d.panels if p.is_sql]
WEEK = (datetime(2026, 11, 16, tzinfo=BEIJING), datetime(2026, 11, 21, tzinfo=BEIJING))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    store, _ = seeded_store(tmp_path_factory.mktemp("dashboards"))
    yield store
    store.close()


def test_the_committed_dashboards_are_what_the_code_builds():
    for dashboard in all_dashboards():
        path = DIRECTORY / f"{dashboard.uid}.json"
        assert path.read_text("utf-8") == render(dashboard), "regenerate: fengqiao dashboards"
    assert len(all_dashboards()) == 4


def test_every_panel_has_its_data_source_and_a_place():
    for dashboard in all_dashboards():
        doc = json.loads(render(dashboard))
        assert doc["panels"] and all(p["targets"][0]["datasource"]["uid"].startswith("fengqiao-") for p in doc["panels"])
        cells = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in doc["panels"]}
        assert len(cells) == len(doc["panels"]), "no two panels on the same spot"


@pytest.mark.parametrize("uid, panel", SQL_PANELS, ids=[f"{u}:{p.title}" for u, p in SQL_PANELS])
def test_every_sql_panel_runs_and_returns_its_columns(seeded, uid, panel):
    shown = 0
    for centre in ("2102", "210202", "210202001", "210202001004"):  # a centre of each level
        rows = seeded.query(expand(panel.query, centre, *WEEK))
        if rows:
            assert tuple(rows[0]) == panel.columns, centre
        shown += len(rows)
    assert shown, f"{panel.title} shows nothing at any level over the seeded week"


def test_the_centre_variable_lists_centres_of_all_four_levels(seeded):
    centres = [r["centre"] for r in seeded.query(CENTRE_VARIABLE["query"])]
    assert {"2102", "210202", "210202001", "210202001004"} <= set(centres)
    assert {len(c) for c in centres} == {4, 6, 9, 12}
