"""A district analyst sees no row of another district: raw tables and rollups, through the CLI."""

from __future__ import annotations

import json
import subprocess

import pytest

from streams.store.jurisdiction import SCOPED_TABLES, SHARED, TABLES
from tests.integration.test_up_command import FENGQIAO, env_for
from tests.seed import seeded_data_dir

pytestmark = pytest.mark.integration

EVERY_TABLE = " UNION ALL ".join(
    f"SELECT '{t}' AS table, {'region_code' if t in SCOPED_TABLES else 'rule_id' if t in SHARED else 'dlq_id'} "
    f"AS region FROM fengqiao.{t}" for t in TABLES)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return seeded_data_dir(tmp_path_factory.mktemp("jurisdiction"))


def sql(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FENGQIAO, "sql", *args], env=env_for(root), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("district, other", [("210202", "210203"), ("210203", "210202")])
def test_a_district_sees_only_its_own_rows_in_every_table(data, district, other):
    done = sql(data, "--as-centre", district, "--format", "json", EVERY_TABLE)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    seen = {r["table"] for r in rows}
    assert seen - set(SHARED) == set(SCOPED_TABLES), "every scoped table, rollups included, has rows of this district"
    scoped = [r for r in rows if r["table"] not in SHARED]
    assert all(r["region"].startswith(district) for r in scoped)
    assert not any(r["region"].startswith(other) for r in scoped)
    unscoped = sql(data, "--format", "json", EVERY_TABLE)
    everyone = json.loads(unscoped.stdout)
    # the rules' versions are about no place: every centre reads all of them
    assert sorted(r["region"] for r in rows if r["table"] in SHARED) == sorted(
        r["region"] for r in everyone if r["table"] in SHARED)
    assert any(r["region"].startswith(other) for r in everyone) and any(r["table"] == "dead_letters" for r in everyone)


def test_a_community_sees_less_than_its_district(data):
    count = "SELECT uniqExactMerge(events) AS n FROM fengqiao.events_hourly"
    by = {c: json.loads(sql(data, "--as-centre", c, "--format", "json", count).stdout)[0]["n"]
          for c in ("2102", "210202", "210202001004", "210202005001")}
    assert by == {"2102": 13, "210202": 9, "210202001004": 7, "210202005001": 2}


@pytest.mark.parametrize("escape", [
    "SELECT count() FROM fengqiao.events SETTINGS additional_table_filters = {'fengqiao.events': '1'}",
    "SET additional_table_filters = {}",
    "SET readonly = 0",
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "INSERT INTO fengqiao.events (uid) VALUES ('x')",
])
def test_the_scope_cannot_be_lifted_from_inside(data, escape):
    done = sql(data, "--as-centre", "210202", escape)
    assert done.returncode == 1 and "error:" in done.stderr and "readonly" in done.stderr.lower(), done.stderr


def test_an_unknown_centre_is_refused_by_name(data):
    done = sql(data, "--as-centre", "219999", "SELECT 1")
    assert done.returncode == 2 and "no centre 219999" in done.stderr


def test_the_evaluation_views_are_scoped_too(data):
    done = sql(data, "--as-centre", "210203", "--format", "json", "SELECT centre_code FROM fengqiao.evaluation_by_centre")
    assert [r["centre_code"] for r in json.loads(done.stdout)] == ["210203001001"]
