"""The city simulator (城市模拟器): a city's reports and alerts, live or in simulated time, in its real
streets and communities (the region pack's), with synthetic people, grids and events.

Two ways to run it, both deterministic by seed:

- live (``CitySimulator.run``, used by ``fengqiao up --simulate`` and the drills): grid reports
  at a fixed rate, with a dispute cluster every ``incident_every`` seconds;
- in simulated time (``timeline``, used by ``fengqiao simulate``, ``fengqiao bench --quality``):
  every source at the volumes of ``CityModel``, following the daily and weekly cycles, with the
  rule pack's cases injected as incidents and decoys (``streams/incidents.py``), as fast as the
  consumer takes them or paced at a chosen speed.

Synthetic people carry valid-looking ID and mobile numbers so that pseudonymisation is exercised
on every run.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.contracts.alerts import REGISTRATIONS, departments
from schemas.contracts.events import BEIJING
from schemas.reference.matters import catalogue
from schemas.reference.regions import Level, registry
from streams import topics
from streams.intake.identity import check_digit
from streams.intake.validation import GRID_PUBLISHER
from streams.runtime.kafka import Cluster

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

    def __init__(self, cluster: Cluster, city: str = "2102", rate: float = 10.0,
                 incident_every: float = 15.0, seed: int = 7,
                 clock: Callable[[], datetime] = lambda: datetime.now(BEIJING)) -> None:
        self.cluster = cluster
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
        producer = self.cluster.producer(acks="all", linger_ms=5)
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


# -- the city in simulated time ------------------------------------------------------------------
@dataclass(frozen=True)
class CityModel:
    """Daily volumes for a Dalian-sized city, and when in the day and week they come.

    Assumptions (written down so they can be argued with): about 7.5 million residents in some
    6,000 grids of 300 to 500 households (the registry has Dalian's 1,832 real village and
    community committees, each with four synthetic grids: 7,328); a grid worker files about 8 reports a day, so 48,000 grid reports;
    departments publish about 4,000 alerts a day, most of them police incidents (110 calls run
    at roughly 3 to 4 per 10,000 residents a day); a handful of emergency broadcasts a day, each
    confirmed by the terminals of every community it covers. Reports follow the working day
    (quiet at night, peaks mid-morning and mid-afternoon), weekends about a third lower; police
    incidents peak in the evening and on weekends.
    """

    grid_reports_per_day: int = 48_000
    alerts_per_day: dict[str, int] = field(default_factory=lambda: {
        "police": 2_600, "urban_mgmt": 600, "fire": 300, "petition": 150, "market_regulation": 120,
        "housing": 60, "civil_affairs": 60, "health": 40, "emergency": 10, "weather": 3})
    broadcasts_per_day: int = 4
    # share of the day's volume in each hour, Beijing time (sums to 1)
    daytime: tuple[float, ...] = (0.008, 0.005, 0.004, 0.004, 0.005, 0.010, 0.020, 0.040, 0.065, 0.080,
                                  0.085, 0.075, 0.055, 0.060, 0.075, 0.080, 0.075, 0.060, 0.045, 0.040,
                                  0.035, 0.030, 0.022, 0.022)
    evening: tuple[float, ...] = (0.030, 0.022, 0.015, 0.010, 0.008, 0.010, 0.018, 0.030, 0.040, 0.045,
                                  0.048, 0.050, 0.050, 0.048, 0.048, 0.050, 0.052, 0.055, 0.060, 0.065,
                                  0.068, 0.065, 0.030, 0.035)
    weekend: float = 0.65  # reports on Saturday and Sunday, against a weekday
    weekend_police: float = 1.2

    def per_hour(self, source: str, hour: datetime, scale: float) -> float:
        """Expected count of ``source`` ("grid", "broadcast" or a department) in the hour from ``hour``."""
        daily = (self.grid_reports_per_day if source == "grid" else
                 self.broadcasts_per_day if source == "broadcast" else self.alerts_per_day[source])
        shape = self.evening if source == "police" else self.daytime
        week = (self.weekend_police if source == "police" else self.weekend) if hour.weekday() >= 5 else 1.0
        return daily * scale * shape[hour.hour] * week


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (normal approximation for large means)."""
    if mean > 50:
        return max(0, round(rng.gauss(mean, mean ** 0.5)))
    n, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


class CityTimeline:
    """Reports and alerts of the city in simulated time: ``(at, topic, key, value)`` in time order."""

    def __init__(self, start: datetime, days: float, scale: float = 1.0, seed: int = 7, city: str = "2102",
                 model: CityModel | None = None) -> None:
        self.start, self.hours, self.scale = start, int(days * 24), scale
        self.model = model or CityModel()
        self.rng = random.Random(seed)
        self.sim = CitySimulator("", city=city, seed=seed, clock=lambda: start)
        self.counts: dict[str, int] = {}
        self.categories = {code: list(d.categories) for code, d in departments().items()}

    def background(self) -> Iterator[tuple[datetime, str, bytes, dict[str, Any]]]:
        sources = ["grid", "broadcast", *self.model.alerts_per_day]
        for h in range(self.hours):
            hour = self.start + timedelta(hours=h)
            batch = []
            for source in sources:
                for _ in range(_poisson(self.rng, self.model.per_hour(source, hour, self.scale))):
                    batch.append((hour + timedelta(seconds=self.rng.random() * 3600), source))
            batch.sort()
            made = []
            for at, source in batch:
                self.counts[source] = self.counts.get(source, 0) + 1
                made.append((at, *self._make(source, at)))
                if source == "broadcast":  # the terminals confirm within minutes
                    made.append(self._confirmation(made[-1], hour))
            yield from sorted(made, key=lambda x: x[0])

    def _make(self, source: str, at: datetime) -> tuple[str, bytes, dict[str, Any]]:
        sim, rng = self.sim, self.rng
        community = rng.choice(sim.communities)
        seq = sum(self.counts.values())
        if source == "grid":
            sim.clock = lambda: at
            report = sim.background()
            return topics.GRID_REPORTS.name, report["grid_code"].encode(), report
        if source == "broadcast":  # a county-wide alert (its terminals' receipt follows)
            return topics.EMERGENCY_BROADCASTS.name, community[:6].encode(), {
                "identifier": f"sim-B{seq:07d}", "sender": "dalian-ebs", "sent": at.isoformat(), "status": "Actual",
                "msgType": "Alert", "scope": "Public",
                "info": [{"category": ["Met"], "event": "大风", "urgency": "Expected", "severity": "Minor",
                          "certainty": "Likely", "area": [{"areaDesc": "模拟区域", "geocode": [
                              {"valueName": "GB2260", "value": community[:6] + "000000"}]}]}]}
        category = rng.choice([c for c in self.categories[source]
                               if c not in ("elderly_alone_registered", "mental_crisis", *REGISTRATIONS)])
        return topics.DEPT_ALERTS.name, community.encode(), {
            "event_id": f"sim-{source}-{seq:08d}", "department": source, "category": category,
            "location": {"region_code": community}, "subjects": [sim._person(community)] if source == "police" else [],
            "text": "部门推送。", "occurred_at": at.isoformat()}

    def _confirmation(self, alert: tuple[datetime, str, bytes, dict[str, Any]], hour: datetime
                      ) -> tuple[datetime, str, bytes, dict[str, Any]]:
        at, _, key, cap = alert
        when = min(at + timedelta(minutes=2 + 8 * self.rng.random()), hour + timedelta(seconds=3599))
        region = cap["info"][0]["area"][0]["geocode"][0]["value"]
        self.counts["receipt"] = self.counts.get("receipt", 0) + 1
        return when, topics.BROADCAST_RECEIPTS.name, key, {
            "event_id": f"{cap['identifier']}-R", "broadcast_sender": cap["sender"],
            "broadcast_identifier": cap["identifier"], "region_code": region, "terminals_total": 40,
            "terminals_played": 40, "occurred_at": when.isoformat()}

    def merged(self, injected: list[tuple[datetime, str, bytes, dict[str, Any]]],
               keep: Callable[[tuple[datetime, str, bytes, dict[str, Any]]], bool] = lambda record: True
               ) -> Iterator[tuple[datetime, str, bytes, dict[str, Any]]]:
        """Background inputs (those ``keep`` keeps) and injected ones, in time order."""
        background = (record for record in self.background() if keep(record))
        return heapq.merge(background, sorted(injected, key=lambda x: x[0]), key=lambda x: x[0])
