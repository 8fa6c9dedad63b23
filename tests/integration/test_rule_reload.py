"""Rules change without redeploying: a file change reloads the pack in a running worker, a broken
file is refused, and rules that did not change keep their window state."""

from __future__ import annotations

import asyncio
import json
import shutil
from importlib import resources
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.app import Stack
from streams.detection.ruleset import INFORMATIONAL
from tests.helpers import grid_report
from tests.integration.conftest import on_kafka
from tests.integration.test_ingestion import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def publish(stack: Stack, *reports: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    await producer.start()
    for r in reports:
        await producer.send_and_wait(topics.GRID_REPORTS.name, json.dumps(r, ensure_ascii=False).encode())
    await producer.stop()
    assert await stack.drain(timeout=30)


async def reloads(stack: Stack, result: str, want: int) -> None:
    async with asyncio.timeout(15):
        while stack.metrics.total(stack.metrics.rule_reloads, result=result) < want:
            await asyncio.sleep(0.2)


async def test_file_changes_reload_the_pack_and_unchanged_rules_keep_their_windows(tmp_path, kafka):
    rules = tmp_path / "rules"
    shutil.copytree(Path(str(resources.files("streams.detection").joinpath("rules"))), rules)
    settings = on_kafka(kafka, data_dir=tmp_path / "data", rules_dir=rules, gateway_port=0, metrics_port=0,
                        app_id="fq-reload")
    async with Stack(settings, gateway=False) as stack:
        await publish(stack, grid_report(1), grid_report(2))

        crisis = rules / "psychological_crisis.yaml"
        crisis.write_text(crisis.read_text("utf-8").replace("window: 7d", "window: 14d"), "utf-8")
        await reloads(stack, "done", 1)
        (rules / "broken.yaml").write_text("id: broken\ntype: event_count\nthreshold: many\n", "utf-8")
        await reloads(stack, "refused", 1)
        pack = [f for f in rules.glob("*.yaml") if f.name not in ("broken.yaml", INFORMATIONAL)]
        assert len(stack.pipeline.correlator.rules) == len(pack)  # the running pack stays

        await publish(stack, grid_report(3))
        signals = [json.loads(r.value) for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)]
        [dispute] = [s for s in signals if s["rule_id"] != "entity_risk"]
        assert dispute["rule_id"] == "dispute_cluster"
        assert len(dispute["evidence"]) == 3  # dispute_cluster kept its two earlier reports
        # 规则版本留痕: the signal names its rule's version; the start and the reload are recorded
        cluster = next(r for r in stack.pipeline.correlator.rules if r.id == "dispute_cluster")
        crisis_now = next(r for r in stack.pipeline.correlator.rules if r.id == "psychological_crisis")
        assert dispute["rule_version"] == cluster.fingerprint
        assert await stack.drain(timeout=30)
        rows = stack.store.query("SELECT rule_id, change, version, previous_version, definition "
                                 "FROM fengqiao.rule_changes FINAL ORDER BY changed_at, rule_id")
        loaded = {r["rule_id"]: r["version"] for r in rows if r["change"] == "loaded"}
        assert len(loaded) == len(stack.pipeline.correlator.rules) and loaded["dispute_cluster"] == cluster.fingerprint
        [changed] = [r for r in rows if r["change"] != "loaded"]
        assert (changed["rule_id"], changed["change"], changed["version"]) == (
            "psychological_crisis", "changed", crisis_now.fingerprint)
        assert changed["previous_version"] == loaded["psychological_crisis"] != crisis_now.fingerprint
        assert json.loads(changed["definition"])["window"] == "P14D"
        analyst = stack.store.query(  # which version of the rule raised it, and what that version said
            "SELECT s.rule_version AS v, c.definition AS d FROM fengqiao.signals AS s FINAL "
            "INNER JOIN fengqiao.rule_changes AS c ON c.rule_id = s.rule_id AND c.version = s.rule_version "
            "WHERE s.rule_id = 'dispute_cluster' LIMIT 1")
        assert analyst[0]["v"] == cluster.fingerprint and json.loads(analyst[0]["d"])["threshold"] == 3
