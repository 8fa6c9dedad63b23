"""Detection quality through the real parts, and recorded files replayed.

A simulated week at a hundredth of the city's volume, with every injectable rule case placed
twice, goes through the embedded broker, a real pipeline and chdb: every incident is found and
the decoys stay quiet (the targets are recall 0.95 and precision 0.9). ``fengqiao simulate``
writes a recording with its ground truth, and ``fengqiao replay`` puts every line of it on its
topic.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from streams import topics
from streams.cli.rules import report
from streams.config import Settings
from streams.detection import ruleset
from streams.detection.ruleset import load_rules
from streams.reports.backtest import Backtest, backtest
from streams.runtime.kafka import Cluster
from streams.runtime.topics import Topology, ensure_topics
from streams.store.clickhouse import Store
from streams.tools.quality import run_week
from streams.tools.replay import read
from tests.integration.conftest import new_kafka
from tests.integration.test_ingestion import read_all
from tests.integration.test_up_command import FENGQIAO

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
@pytest.mark.timeout(600)
async def test_a_simulated_week_finds_its_incidents_and_a_backtest_over_it_raises_exactly_the_same(
        tmp_path, capsys):
    """The week's incidents found, its decoys quiet. Then 规则回测 over the events the live run stored:
    the same pack raises exactly the signals it raised, and a pack whose dispute_cluster asks for
    four disputes rather than three shows which of its signals would not have been raised."""
    changed = tmp_path / "pack"
    shutil.copytree(Path(ruleset.__file__).parent / "rules", changed)
    rule = changed / "dispute_cluster.yaml"
    rule.write_text(rule.read_text().replace("threshold: 3", "threshold: 4"))
    runs: dict[str, Backtest] = {}
    stored: list[int] = []

    def then(store: Store, settings: Settings) -> None:
        days = sorted({r["d"] for r in store.query("SELECT DISTINCT toDate(occurred_at) AS d FROM fengqiao.events")})
        first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
        for name, pack in (("same", load_rules()), ("changed", load_rules(changed))):
            runs[name] = backtest(store, pack, first, last, Topology(settings.partition_scale),
                                  settings.source_idle_seconds, follow_clock=False)
        report(runs["changed"])
        stored.append(int(store.query("SELECT count() AS n FROM fengqiao.signals FINAL")[0]["n"]))

    scores, incidents, _, facts = await run_week(days=7, scale=0.01, seed=5, repeat=2, then=then)
    assert facts["drained"]
    found = sum(s.found for s in scores)
    fired = found + sum(s.fired_on_decoys for s in scores)
    assert sum(i.positive for i in incidents) == sum(s.incidents for s in scores) >= 20
    assert found / sum(s.incidents for s in scores) >= 0.95, [vars(s) for s in scores]
    assert found / fired >= 0.9, [vars(s) for s in scores]

    same, changed_run = runs["same"], runs["changed"]
    assert same.differences == [], same.differences
    per_rule = {r.rule_id: r for r in same.rules}
    assert sum(r.live for r in same.rules) == sum(r.backtest for r in same.rules) == stored[0] >= facts["signals"]
    assert sum(1 for r in same.rules if r.live) >= 8
    assert all(r.live_versions <= {r.version} for r in same.rules if r.rule_id != "entity_risk")
    assert per_rule["dispute_cluster"].live >= 2 and per_rule["broadcast_coverage_gap"].live >= 1
    fewer = {r.rule_id: r for r in changed_run.rules}["dispute_cluster"]
    assert fewer.only_live >= 1 and fewer.only_backtest == 0 and fewer.live_versions != {fewer.version}
    assert {d.rule_id for d in changed_run.differences} <= {"dispute_cluster", "compound_community_risk",
                                                             "dispute_escalation", "entity_risk"}
    shown = capsys.readouterr().out
    assert "dispute_cluster" in shown and "signals differ" in shown


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_a_simulated_day_is_recorded_and_replayed_onto_its_topics(tmp_path):
    recording = tmp_path / "day.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FENGQIAO_")}
    done = subprocess.run([FENGQIAO, "simulate", "--days", "1", "--scale", "0.02", "--seed", "9", "--out",
                           str(recording)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = read(recording)
    truth = json.loads((tmp_path / "day.jsonl.truth.json").read_text())
    assert truth["incidents"] and all({"rule", "should_fire", "street", "due"} <= set(i) for i in truth["incidents"])
    assert [at for at, *_ in lines] == sorted(at for at, *_ in lines)
    with new_kafka(tmp_path / "kafka") as broker:
        await ensure_topics(Cluster(broker.bootstrap_servers), topics.ALL)
        done = subprocess.run([FENGQIAO, "replay", str(recording), "--speed", "0", "--quiet",
                               "--bootstrap", broker.bootstrap_servers], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        sent = Counter(topic for _, topic, _, _ in lines)
        for topic, n in sent.items():
            spec = next(s for s in topics.INPUTS if s.name == topic)
            assert len(await read_all(broker.bootstrap_servers, spec)) == n
    bad = tmp_path / "bad.jsonl"
    bad.write_text(recording.read_text().splitlines()[0] + "\n{not json\n")
    done = subprocess.run([FENGQIAO, "replay", str(bad), "--bootstrap", "127.0.0.1:9"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "bad.jsonl:2" in done.stderr
