"""The identifier corpus (tests/corpus) through the real broker and worker: none of it in clear.

Every text of the corpus is published in a grid report's text, address or reporter, a police
alert's text or attributes, or a broadcast's headline, and as broken input that is dead-lettered;
then every topic after validation and every ClickHouse table is scanned for each identifier of
the corpus as written and as its bare digits. No number may be found; a name only if the corpus
measurement already counts it as missed (the recall in BENCHMARKS.md).
"""

from __future__ import annotations

import json
import re

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.app import Stack
from streams.intake.masking import MASKED, fold
from tests.helpers import COMMUNITY, cap_xml, dept_alert, grid_report
from tests.integration.conftest import on_kafka
from tests.integration.test_ingestion import body, read_all
from tests.unit.test_masking_corpus import corpus, measure

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROWS = corpus()
MOBILES = [i["text"] for row in ROWS for i in row["identifiers"] if i["kind"] == "mobile"]


def published() -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for n, row in enumerate(ROWS):
        text = row["text"]
        kind = n % 4
        if kind == 0:
            out.append((topics.GRID_REPORTS.name, body(grid_report(
                10_000 + n, parties=[], text=text, reporter=MOBILES[n % len(MOBILES)][:64]))))
        elif kind == 1:
            out.append((topics.GRID_REPORTS.name, body(grid_report(
                10_000 + n, parties=[], text="网格员上报", location={"region_code": COMMUNITY, "address": text[:200]}))))
        elif kind == 2:
            out.append((topics.DEPT_ALERTS.name, body(dept_alert(
                10_000 + n, subjects=[], text=text, attributes={"caller": text[:100], "call_id": f"110-{n}"}))))
        else:
            headline = text.replace("&", "和").replace("<", "").replace(">", "")
            xml = cap_xml(f"DL-EBS-C{n:04d}").decode().replace("<headline>大连市气象台发布寒潮橙色预警</headline>",
                                                              f"<headline>{headline}</headline>").encode()
            out.append((topics.EMERGENCY_BROADCASTS.name, xml))
    # broken input carrying identifiers: dead-lettered, masked in its ClickHouse preview
    for n, row in enumerate(ROWS[:40]):
        out.append((topics.GRID_REPORTS.name, json.dumps({"event_id": f"bad-{n}", "text": row["text"]},
                                                         ensure_ascii=False).encode()[:-1]))
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory, module_kafka):
    settings = on_kafka(module_kafka, data_dir=tmp_path_factory.mktemp("fq"), gateway_port=0, metrics_port=0,
                        app_id="fq-masking")
    async with Stack(settings) as running:
        producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap_servers, acks="all")
        await producer.start()
        for topic, value in published():
            await producer.send(topic, value, key=b"k")
        await producer.flush()
        await producer.stop()
        assert await running.drain(timeout=180)
        yield running


async def test_the_corpus_was_taken_in(stack):
    s = stack.summary()
    assert s["events_in"] == len(published())
    assert (s["events_valid"], s["events_dlq"]) == (len(ROWS), 40)


async def test_no_identifier_of_the_corpus_is_in_clear_anywhere(stack):
    texts = []
    after_validation = (topics.EVENTS, topics.REGIONAL_EVENTS, topics.SIGNALS, topics.CENTRE_NOTICES,
                        topics.DRILL_NOTICES, topics.BROADCAST_REQUESTS, topics.LATE_EVENTS, topics.PERSON_LINKS)
    for spec in after_validation:
        texts.extend(r.value.decode("utf-8", "replace") for r in await read_all(stack.bootstrap_servers, spec))
    for table in set(stack.store.tables()) - {"regions"}:  # the places' public names (金凤村), not from events
        texts.append(json.dumps(stack.store.query(f"SELECT * FROM fengqiao.{table}"), ensure_ascii=False, default=str))
    blob = MASKED.sub("", "\n".join(texts))
    digits_only = re.sub(r"p-[0-9a-f]{16}", "", fold(blob))
    assert "[姓名 " in "\n".join(texts) and "[手机 " in "\n".join(texts)  # masks are there instead
    leaked = []
    for row in ROWS:
        for ident in row["identifiers"]:
            if ident["text"] in blob:
                leaked.append(ident["text"])
            elif ident["kind"] != "name":
                bare = re.sub(r"\D", "", fold(ident["text"]))[-11:] if ident["kind"] == "mobile" else \
                    re.sub(r"[^\dXx]", "", fold(ident["text"]))
                if re.search(rf"(?<!\d){re.escape(bare)}(?![\dXx])", digits_only):
                    leaked.append(ident["text"])
    numbers = [t for t in leaked if any(c.isdigit() for c in fold(t))]
    assert not numbers, numbers[:20]
    # names: only those the corpus measurement already counts as missed (BENCHMARKS.md)
    known_misses = {text for kind, text, _ in measure()["misses"] if kind == "name"}
    assert set(leaked) - set(numbers) <= known_misses, sorted(set(leaked) - set(numbers) - known_misses)
