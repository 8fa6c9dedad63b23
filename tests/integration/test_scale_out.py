"""Workers join and leave: each step's partitions move between them, window state moves with them
through its changelog, and nothing is lost or stored twice.

Real ``fengqiao worker`` processes on the embedded broker, each with a ClickHouse of its own: a
community's dispute reports come one before a second worker joins, one after, and one after the
first worker has stopped. The rule still fires on the third, whichever worker holds the
community's partition by then, and every report is in exactly one of the two stores.
"""

from __future__ import annotations

import asyncio
import re
import signal

import pytest

from schemas.contracts.signals import RiskSignal
from streams import topics
from streams.runtime.kafka import Cluster
from streams.runtime.topics import drained, ensure_topics
from streams.store.clickhouse import EmbeddedStore
from streams.worker.pipeline import groups
from tests.helpers import COMMUNITY, OTHER_COMMUNITY, grid_report
from tests.integration.conftest import new_kafka
from tests.integration.test_ingestion import read_all
from tests.integration.test_restart import publish, start_worker

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
GROUP = "fq-restart"  # start_worker's app id


async def all_committed(bootstrap: str, timeout: float = 120) -> None:
    assert await drained(Cluster(bootstrap), groups(GROUP), timeout) is not None


def background(first: int) -> list[dict]:
    return [grid_report(n, community=OTHER_COMMUNITY, category="hazard.gas") for n in range(first, first + 20)]


@pytest.mark.timeout(600)
async def test_workers_joining_and_leaving_lose_nothing_and_keep_the_windows(tmp_path):
    with new_kafka(tmp_path / "kafka") as broker:
        bootstrap = broker.bootstrap_servers
        await ensure_topics(Cluster(bootstrap), topics.ALL)
        first = await asyncio.to_thread(start_worker, bootstrap, tmp_path / "a", tmp_path / "a.log")
        second = None
        try:
            await publish(bootstrap, grid_report(1), *background(100))
            await all_committed(bootstrap)
            second = await asyncio.to_thread(start_worker, bootstrap, tmp_path / "b", tmp_path / "b.log")
            await publish(bootstrap, grid_report(2), *background(200))
            await all_committed(bootstrap)
            first.send_signal(signal.SIGTERM)  # leaves its groups: the second worker takes everything
            assert await asyncio.to_thread(first.wait, 60) == 0
            await publish(bootstrap, grid_report(3), *background(300))
            await all_committed(bootstrap)
        finally:
            for worker in (first, second):
                if worker and worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(timeout=60)
        fired = [s for r in await read_all(bootstrap, topics.SIGNALS)
                 if (s := RiskSignal.model_validate_json(r.value)).rule_id == "dispute_cluster"]
    assert {s.entity for s in fired} == {COMMUNITY}
    assert sorted(e.uid for e in fired[-1].evidence) == ["grid:t-000001", "grid:t-000002", "grid:t-000003"]
    stored = []
    for name in ("a", "b"):
        store = EmbeddedStore(str(tmp_path / name / "clickhouse"))
        try:
            stored += [r["uid"] for r in store.query("SELECT uid FROM fengqiao.events")]
        finally:
            store.close()
    published = {f"grid:t-{n:06d}" for n in (1, 2, 3, *range(100, 120), *range(200, 220), *range(300, 320))}
    assert set(stored) == published, "every report stored"
    assert len(stored) == len(published), "none stored by both workers"
    a_log, b_log = (tmp_path / "a.log").read_text(), (tmp_path / "b.log").read_text()
    assert "Traceback" not in a_log + b_log
    # When the second worker joined, the first kept the partitions it was given back as they were,
    # instead of rebuilding every one of them from its changelog.
    kept = [int(n) for n in re.findall(r"holds .*?: (\d+) kept as they were", a_log)]
    assert kept and max(kept) >= 1, a_log[-3000:]
