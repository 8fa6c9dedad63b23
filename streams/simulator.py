"""A minimal city simulator (城市模拟器): grid reports for one city, with dispute clusters injected.

Background reports spread over every synthetic community and the whole matter catalogue;
every ``incident_every`` seconds one community gets a cluster of dispute reports, enough to
cross the dispute rule's threshold. Synthetic people carry valid-looking ID and mobile numbers
so that pseudonymisation is exercised on every run. Deterministic by seed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any


from schemas.events import BEIJING
from schemas.matters import catalogue
from schemas.regions import Level, registry
from streams import kafka, topics
from streams.identity import check_digit
from streams.validation import GRID_PUBLISHER

log = logging.getLogger(__name__)

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英"]
DISPUTE_TEXT = {
    "dispute.neighbour": "{a}与{b}因楼上噪音问题多次争吵，情绪激动。",
    "dispute.family": "{a}与{b}因赡养老人问题发生争执，{a}联系电话{phone}。",
    "dispute.property_mgmt": "{a}等业主与物业因停车收费发生纠纷，{b}表示将集体投诉。",
    "dispute.labour": "{a}反映被拖欠工资三个月，与包工头{b}发生冲突，身份证号{id}。",
}


def synthetic_id_number(rng: random.Random, county: str) -> str:
    """A synthetic 18-digit resident ID number with a valid GB 11643 check digit."""
    birth = f"{rng.randint(1940, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = f"{county}{birth}{rng.randint(0, 999):03d}"
    return body + check_digit(body)


class CitySimulator:
    """Feeds the grid-reports topic of a city at ``rate`` reports per second."""

    def __init__(self, bootstrap_servers: str, city: str = "2102", rate: float = 10.0,
                 incident_every: float = 15.0, seed: int = 7,
                 clock: Callable[[], datetime] = lambda: datetime.now(BEIJING)) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.rng = random.Random(seed)
        self.rate = rate
        self.incident_every = incident_every
        self.clock = clock
        self.communities = [c.code for c in registry().of_level(Level.community) if c.code.startswith(city)]
        if not self.communities:
            raise ValueError(f"no communities under city {city}")
        self.matters = list(catalogue().matters)
        self.disputes = [m for m in self.matters if m.startswith("dispute.")]
        self.sent = 0
        self.ledger: list[str] | None = None  # the uids sent, when someone keeps account (the drills)
        self.incidents: list[str] = []  # communities that got a dispute cluster, in order
        self._seq = 0

    def _person(self, community: str) -> dict[str, Any]:
        name = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)
        return {
            "name": name,
            "id_number": synthetic_id_number(self.rng, community[:6]),
            "phone": f"1{self.rng.choice('3589')}{self.rng.randint(0, 999999999):09d}",
        }

    def report(self, community: str, category: str) -> dict[str, Any]:
        """One grid report as the grid back-end would publish it."""
        self._seq += 1
        grid = f"{community}{self.rng.randint(1, 4):03d}"
        a, b = self._person(community), self._person(community)
        template = DISPUTE_TEXT.get(category, "网格员巡查发现：{a}反映情况，已登记。")
        text = template.format(a=a["name"], b=b["name"], phone=a["phone"], id=a["id_number"])
        return {
            "event_id": f"sim-{self._seq:08d}",
            "grid_code": grid,
            "reporter": f"GW{grid[-7:]}",
            "category": category,
            "parties": [a, b] if category.startswith("dispute.") else [a],
            "location": {"region_code": community, "address": f"{self.rng.randint(1, 40)}号楼"},
            "text": text,
            "occurred_at": self.clock().isoformat(),
        }

    def background(self) -> dict[str, Any]:
        category = self.rng.choice(self.matters)
        if category.startswith("dispute.") and self.rng.random() < 0.9:
            category = self.rng.choice([m for m in self.matters if not m.startswith("dispute.")])
        return self.report(self.rng.choice(self.communities), category)

    def incident(self) -> list[dict[str, Any]]:
        """A dispute cluster in one community: one more report than the threshold needs."""
        community = self.rng.choice(self.communities)
        self.incidents.append(community)
        return [self.report(community, self.rng.choice(self.disputes)) for _ in range(4)]

    async def run(self, stop: asyncio.Event | None = None, first_incident_after: float = 3.0,
                  seconds: float | None = None) -> None:
        """Send reports at ``rate`` a second (on a fixed schedule, so a slow send does not slow
        the pace) until ``stop`` is set or ``seconds`` have passed; with a ``ledger`` list, the
        uid of every report sent goes into it."""
        import orjson

        stop = stop or asyncio.Event()
        producer = kafka.producer(self.bootstrap_servers, acks="all", linger_ms=5)
        await producer.start()
        loop = asyncio.get_running_loop()
        start = loop.time()
        next_incident, paced = start + first_incident_after, 0
        try:
            while not stop.is_set() and (seconds is None or loop.time() - start < seconds):
                batch = [self.background()]
                if loop.time() >= next_incident:
                    batch.extend(self.incident())
                    next_incident += self.incident_every
                for report in batch:
                    await producer.send(topics.GRID_REPORTS.name, orjson.dumps(report),
                                        key=report["grid_code"].encode())
                    if self.ledger is not None:
                        self.ledger.append(f"{GRID_PUBLISHER}:{report['event_id']}")
                self.sent += len(batch)
                paced += 1
                delay = start + paced / self.rate - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=delay)
                    except asyncio.TimeoutError:
                        pass
            await producer.flush()
        finally:
            await producer.stop()
