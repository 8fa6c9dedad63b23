"""What an alerting system owes its operators (issue 17), through Apache Kafka and the worker.

Periodic work (absences falling due) that fails starts over as a failed batch does, and failing
on, stops the worker, which reports itself unhealthy. A province-wide CAP warning nobody confirmed raises a coverage gap for the whole province: it
reaches every city centre of the province the registry knows and is stored, instead of an
IndexError in the step's periodic work. And it falls due on the wall clock: the province sends
nothing after it, so no later event moves the watermark; live, a partition with nothing left
to read follows the clock.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest

from schemas.contracts.events import BEIJING
from schemas.contracts.signals import CentreNotice
from streams import topics
from streams.app import Stack
from streams.reports.backtest import backtest
from streams.runtime.runner import MAINTAIN_ATTEMPTS
from streams.runtime.topics import Topology
from tests.helpers import cap_xml
from tests.integration.conftest import on_kafka, produce
from tests.integration.test_ingestion import read_all
from tests.integration.test_step_failure import stops_unhealthy

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
P99_TARGET = 1.0  # seconds from an event's intake to its notices: the pipeline's p99 target (BENCHMARKS.md)


def sent_ago(xml: bytes, minutes: int) -> bytes:
    """The alert as sent ``minutes`` ago by the wall clock."""
    sent = (datetime.now(BEIJING) - timedelta(minutes=minutes)).replace(microsecond=0).isoformat()
    return xml.replace(b"2026-11-20T08:00:00+08:00", sent.encode())


async def until(check, timeout: float = 60.0):
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.5)
    return found


async def test_a_province_wide_gap_falls_due_on_the_clock_and_reaches_every_city_centre_of_the_province(
        tmp_path, kafka):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-province",
                        source_idle_seconds=2.0)
    async with Stack(settings, gateway=False) as stack:
        alert = cap_xml("LN-MET-RED-1", geocodes=("210000",), level="红色", severity="Extreme")
        await publish_cap(stack, sent_ago(alert, 40))

        async def notices() -> list[CentreNotice]:
            got = [CentreNotice.model_validate_json(r.value)
                   for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)]
            return [n for n in got if n.rule_id == "broadcast_coverage_gap"]

        gap = await until(notices)
        assert sorted(n.centre_code for n in gap) == ["2101", "2102"]  # Shenyang and Dalian, not Liaoyuan (Jilin)
        assert {n.region_code for n in gap} == {"210000000000"}
        assert await stack.drain(timeout=60)
        stored = stack.store.query("SELECT region_code FROM fengqiao.signals FINAL "
                                   "WHERE rule_id = 'broadcast_coverage_gap'")
        assert stored == [{"region_code": "210000000000"}]
        m = stack.metrics
        assert m.total(m.step_failures) == 0 and m.total(m.signals_unrouted) == 0
        assert stack.alive()



async def publish_cap(stack: Stack, xml: bytes) -> None:
    await produce(stack.bootstrap_servers, topics.EMERGENCY_BROADCASTS, [(b"dl-ebs", xml)])


def failing_plan(monkeypatch, times: int, rule: str = "broadcast_coverage_gap") -> list[int]:
    """The correlate step's notification planning raises ``times`` times (every time: -1) for the
    signals of ``rule`` (the broadcast's own severe-alert signal, raised as it is read, goes through)."""
    from streams.worker import correlate

    real, failures = correlate.plan, []

    def plan(signal, *args, **kwargs):
        if signal.rule_id == rule and (times < 0 or len(failures) < times):
            failures.append(1)
            raise IndexError("a defect in planning")
        return real(signal, *args, **kwargs)

    monkeypatch.setattr(correlate, "plan", plan)
    return failures


async def test_periodic_work_that_fails_starts_over_and_what_it_owed_comes_once(tmp_path, kafka, monkeypatch):
    """The coverage gap falls due in the step's periodic work, whose planning fails twice: the
    partition starts over from its changelog, the gap is found again, and it is raised once."""
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-periodic",
                        source_idle_seconds=2.0)
    async with Stack(settings, gateway=False) as stack:
        failures = failing_plan(monkeypatch, 2)
        await publish_cap(stack, sent_ago(cap_xml("DL-EBS-GAP-1"), 40))

        async def gaps() -> list:
            return [r for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)
                    if b'"broadcast_coverage_gap"' in r.value]

        assert len(await until(gaps)) == 1
        await asyncio.sleep(3)  # and no second one after
        assert len(await gaps()) == 1 and len(failures) == 2
        m = stack.metrics
        assert m.total(m.step_failures, step="correlate", kind="periodic") == 2
        assert m.total(m.signals, rule="broadcast_coverage_gap", kind="new") == 1
        assert stack.alive()


async def test_periodic_work_that_keeps_failing_makes_the_worker_unhealthy(tmp_path, kafka, monkeypatch):
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-periodic-broken",
                        source_idle_seconds=2.0)
    async with Stack(settings, gateway=False) as stack:
        failing_plan(monkeypatch, -1)
        await publish_cap(stack, sent_ago(cap_xml("DL-EBS-GAP-2"), 40))
        await stops_unhealthy(stack, timeout=90)
        m = stack.metrics
        assert m.total(m.step_failures, step="correlate", kind="periodic") == MAINTAIN_ATTEMPTS


async def test_a_city_wide_warning_reaches_registered_elders_in_every_county_s_partition(tmp_path, kafka):
    """Two elders registered in communities of two districts (events partitions 0 and 4); a
    city-wide cold wave (keyed by the city, partition 1) 50 hours ago and no visit since: each
    community's welfare signal is raised, although neither lives where the warning landed."""
    from tests.helpers import dept_alert

    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-city-wide",
                        source_idle_seconds=2.0)
    now = datetime.now(BEIJING).replace(microsecond=0)
    alerts = [dept_alert(n, department="civil_affairs", category="elderly_alone_registered", community=place,
                         occurred_at=(now - timedelta(days=3)).isoformat())
              for n, place in ((1, "210202001004"), (2, "210203001001"))]
    alerts.append(dept_alert(3, department="weather", category="cold_wave", community="210200000000",
                             occurred_at=(now - timedelta(hours=50)).isoformat(), subjects=[]))
    async with Stack(settings, gateway=False) as stack:
        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS,
                      [(a["department"].encode(), json.dumps(a, ensure_ascii=False).encode()) for a in alerts])

        async def welfare() -> set[str]:
            found = {s["region_code"] for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)
                     if (s := json.loads(r.value))["rule_id"] == "welfare_under_weather_warning"}
            return found if len(found) == 2 else set()

        assert await until(welfare) == {"210202001004", "210203001001"}
        assert await stack.drain(timeout=60)
        stored = stack.store.query("SELECT count() AS n FROM fengqiao.events FINAL WHERE region_code = '210200000000'")
        assert stored == [{"n": 1}]  # the warning is stored once, not once per county it reached


async def test_two_sources_day_long_backlogs_in_one_burst_after_a_quiet_spell_are_read_in_time_order(
        tmp_path, kafka):
    """After a quiet spell, civil affairs and weather publish three days at once (a registration,
    a cold wave, then an alert an hour), and the grid back-end its own three days, among them
    the visit that answers the warning. Validate holds the alerts until the grid reports catch up,
    by what the broker has now (its last fetch of the grid reports, from the quiet spell, saw
    nothing more to read): no false welfare case."""
    from tests.helpers import dept_alert, grid_report, id_number

    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-burst",
                        source_idle_seconds=2.0, idle_watermark="event")
    day0 = datetime.now(BEIJING).replace(microsecond=0) - timedelta(days=4)
    place = "210202001004"

    def alert(n: int, hours: float, department: str, category: str) -> tuple[bytes, bytes]:
        doc = dept_alert(n, department=department, category=category, community=place,
                         occurred_at=(day0 + timedelta(hours=hours)).isoformat())
        return department.encode(), json.dumps(doc, ensure_ascii=False).encode()

    def report(n: int, hours: float, category: str) -> tuple[bytes, bytes]:
        doc = grid_report(n, community=place, category=category, at=day0 + timedelta(hours=hours))
        return doc["grid_code"].encode(), json.dumps(doc, ensure_ascii=False).encode()

    alerts = [alert(1, 0, "civil_affairs", "elderly_alone_registered"), alert(2, 1, "weather", "cold_wave"),
              *(alert(10 + h, h, "police", "police_call_110") for h in range(2, 72))]
    reports = [report(h, h, "environment.sanitation") for h in range(0, 72) if h != 30]
    visit = grid_report(1000, community=place, category="care.elderly_alone", at=day0 + timedelta(hours=30),
                        parties=[{"name": "张伟", "id_number": id_number(1)}])  # the registered elder
    reports.insert(30, (visit["grid_code"].encode(), json.dumps(visit, ensure_ascii=False).encode()))  # 29 h on
    async with Stack(settings, gateway=False) as stack:
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS, [report(5000, -48, "environment.sanitation")])
        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS, [alert(5000, -48, "police", "police_call_110")])
        assert await stack.drain(timeout=60)
        await asyncio.sleep(4)  # a quiet spell: both sources idle past their bound
        # The burst lands; the grid reports' fetch is slow (another node leads them, say): held
        # back here for 4 s while the alerts are fetched and would run ahead to their third day.
        consumer = stack.pipeline.runner("validate").consumer
        grid = {tp for tp in consumer.assignment() if tp.topic == topics.GRID_REPORTS.name}
        consumer.pause(*grid)
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS, reports)
        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS, alerts)
        await asyncio.sleep(4)
        consumer.resume(*grid)
        assert await stack.drain(timeout=120)
        await asyncio.sleep(3)
        assert await stack.drain(timeout=60)
        raised = [json.loads(r.value)["rule_id"] for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)]
        assert "welfare_under_weather_warning" not in raised
        stored = stack.store.query("SELECT count() AS n FROM fengqiao.events FINAL WHERE category = 'care.elderly_alone'")
        assert stored == [{"n": 1}]


async def test_a_lone_red_police_alert_notifies_its_centres_at_once(tmp_path, kafka):
    """One red report of a gathering, nothing before or after it: the four centres of its community
    are notified without waiting for a window to fill or an event to move time on, within the
    pipeline's p99 target from the event's intake to its notices (1 s, BENCHMARKS.md)."""
    from tests.helpers import dept_alert

    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-urgent")
    alert = dept_alert(1, category="gathering", severity="red", occurred_at=datetime.now(BEIJING).isoformat())
    async with Stack(settings, gateway=False) as stack:
        await produce(stack.bootstrap_servers, topics.DEPT_ALERTS, [(b"police", json.dumps(alert).encode())])

        async def notices() -> list[CentreNotice]:
            got = [CentreNotice.model_validate_json(r.value)
                   for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)]
            urgent = [n for n in got if n.rule_id == "urgent_department_alert"]
            return urgent if len(urgent) >= 4 else []

        sent = await until(notices, timeout=30)
        assert sorted((n.centre_code, n.role.value) for n in sent) == [  # one per centre, in any partition
            ("2102", "inform"), ("210202", "inform"), ("210202001", "inform"), ("210202001004", "handle")]
        assert {n.level.value for n in sent} == {"red"}
        m = stack.metrics
        assert m.total(m.signals, rule="urgent_department_alert", kind="new") == 1
        assert await stack.drain(timeout=60)
        [taken] = stack.store.query("SELECT toUnixTimestamp64Milli(ingested_at) AS ms FROM fengqiao.events FINAL")
        took = max(n.created_at.timestamp() for n in sent) - int(taken["ms"]) / 1000
        assert 0 <= took <= P99_TARGET, took


async def test_a_drill_grid_report_pages_no_one(tmp_path, kafka):
    """A grid worker's exercise (drill: true), marked red: its signal goes to the drill channel
    only, and is stored as a drill; no live centre is paged (Dalian art. 18's yearly drills)."""
    from tests.helpers import grid_report

    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-drill-report")
    report = grid_report(1, category="hazard.gas", severity_hint="red", drill=True,
                         at=datetime.now(BEIJING).replace(microsecond=0))
    async with Stack(settings, gateway=False) as stack:
        await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                      [(report["grid_code"].encode(), json.dumps(report, ensure_ascii=False).encode())])

        async def drills() -> list[CentreNotice]:
            return [CentreNotice.model_validate_json(r.value)
                    for r in await read_all(stack.bootstrap_servers, topics.DRILL_NOTICES)]

        drill = await until(drills, timeout=30)
        assert {n.rule_id for n in drill} == {"urgent_grid_report"} and all(n.drill for n in drill)
        assert await stack.drain(timeout=60)
        assert await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES) == []
        assert stack.store.query("SELECT drill FROM fengqiao.events FINAL") == [{"drill": 1}]


async def test_a_late_event_is_counted_and_kept_with_the_signal_it_would_have_changed(tmp_path, kafka):
    from tests.helpers import T0, grid_report

    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-late")
    async with Stack(settings, gateway=False) as stack:
        for reports in ([grid_report(n) for n in (1, 2, 3)], [grid_report(4, at=T0 - timedelta(days=2))]):
            await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                          [(r["grid_code"].encode(), json.dumps(r, ensure_ascii=False).encode()) for r in reports])
            assert await stack.drain(timeout=60)  # the late one synced after the cluster was raised
        m = stack.metrics
        assert m.total(m.events_late, rule_id="dispute_cluster") == 1
        [signal] = stack.store.query("SELECT signal_id FROM fengqiao.signals FINAL WHERE rule_id = 'dispute_cluster'")
        kept = stack.store.query("SELECT uid, signal_id, late_by_s FROM fengqiao.late_events FINAL "
                                 "WHERE rule_id = 'dispute_cluster'")
        assert kept == [{"uid": "grid:t-000004", "signal_id": signal["signal_id"], "late_by_s": 24 * 3600 + 3 * 60}]
        assert stack.store.query("SELECT count() AS n FROM fengqiao.events FINAL WHERE uid = 'grid:t-000004'") == [
            {"n": 1}]  # the event itself is stored as every event is


async def test_a_broadcast_cancelled_before_its_deadline_raises_no_gap(tmp_path, kafka):
    """Two warnings 40 minutes ago, no receipt for either; one was cancelled five minutes after
    it was sent. Once the clock passes their deadlines, only the other raises its coverage gap."""
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-cancel",
                        source_idle_seconds=2.0)
    kept, cancelled = cap_xml("DL-EBS-KEPT"), cap_xml("DL-EBS-GONE")
    cancel = cap_xml("DL-EBS-GONE-C", msg_type="Cancel", references="dalian-ebs,DL-EBS-GONE,2026-11-20T08:00:00+08:00")
    async with Stack(settings, gateway=False) as stack:
        for xml, ago in ((kept, 40), (cancelled, 40), (cancel, 35)):
            await publish_cap(stack, sent_ago(xml, ago))

        async def gaps() -> list[str]:
            return [json.loads(r.value)["entity"] for r in await read_all(stack.bootstrap_servers, topics.SIGNALS)
                    if b'"broadcast_coverage_gap"' in r.value]

        assert await until(gaps) == ["210202000000|dalian-ebs,DL-EBS-KEPT"]
        await asyncio.sleep(3)
        assert await gaps() == ["210202000000|dalian-ebs,DL-EBS-KEPT"]


async def test_a_receipt_made_in_time_that_arrives_late_answers_the_gap_and_its_case_closes_itself(tmp_path, kafka):
    """迟到回应: a warning 40 minutes ago, no receipt; its coverage gap falls due on the clock and
    opens a case at the district. Then the terminals' receipt, made 20 minutes after the warning,
    reaches fengqiao: the signal is updated as answered late, the district is told in place, and
    the case closes itself, recorded as the desk's own 办结 with the reason."""
    settings = on_kafka(kafka, data_dir=tmp_path, gateway_port=0, metrics_port=0, app_id="fq-answered",
                        source_idle_seconds=2.0)
    sent = datetime.now(BEIJING).replace(microsecond=0) - timedelta(minutes=40)
    async with Stack(settings) as stack:
        await publish_cap(stack, sent_ago(cap_xml("DL-EBS-LATE"), 40))
        assert stack.desk is not None
        case = await until(lambda: asyncio.sleep(0, [c for c in stack.desk.cases.values()
                                                     if c.rule_id == "broadcast_coverage_gap"]))
        [gap] = case
        assert gap.handler == "210202" and gap.state.value == "open"
        receipt = {"event_id": "r-late", "broadcast_sender": "dalian-ebs", "broadcast_identifier": "DL-EBS-LATE",
                   "region_code": "210202", "terminals_total": 12, "terminals_played": 12,
                   "occurred_at": (sent + timedelta(minutes=20)).isoformat()}
        await produce(stack.bootstrap_servers, topics.BROADCAST_RECEIPTS, [(b"210202", json.dumps(receipt).encode())])

        await until(lambda: asyncio.sleep(0, gap.state.value == "closed"))
        assert gap.answered_at == sent + timedelta(minutes=20)
        [closing] = [h for h in gap.history if h["kind"] == "close"]
        assert closing["actor"] == "fengqiao" and "迟到回应" in closing["note"]
        notices = [CentreNotice.model_validate_json(r.value)
                   for r in await read_all(stack.bootstrap_servers, topics.CENTRE_NOTICES)]
        told = [n for n in notices if n.signal_id == gap.signal_id and n.centre_code == "210202"]
        assert [(n.is_update, n.answered_at is not None) for n in told] == [(False, False), (True, True)]
        assert await stack.drain(timeout=60)
        [stored] = stack.store.query("SELECT version, answered_at IS NOT NULL AS answered, summary "
                                     "FROM fengqiao.signals FINAL WHERE signal_id = {s:String}", {"s": gap.signal_id})
        assert stored["version"] == 2 and stored["answered"] and "迟到回应" in stored["summary"]
        actions = stack.store.query("SELECT kind, actor, outcome FROM fengqiao.dispatch_actions FINAL "
                                    "WHERE signal_id = {s:String}", {"s": gap.signal_id})
        assert actions == [{"kind": "close", "actor": "fengqiao", "outcome": "accepted"}]
        # 规则回测 reads the receipt where it arrived, after the gap fell due on the clock: the same
        # signal, answered late, and nothing else different
        again = backtest(stack.store, stack.rules, sent.date(), datetime.now(BEIJING).date(),
                         Topology(settings.partition_scale), settings.source_idle_seconds, follow_clock=True)
        assert again.differences == []
        assert [(r.live, r.same) for r in again.rules if r.rule_id == "broadcast_coverage_gap"] == [(1, 1)]
