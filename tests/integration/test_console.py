"""The centres' console in a real browser, and who it lets in.

A stack as ``fengqiao up`` builds it (Apache Kafka, the worker, chdb, the gateway with the
console and the dispatch desk) runs with the city simulator feeding Dalian, on a clock the test
can move. Debian's Chromium, driven by Playwright, plays the operators: a community operator
signs in, sees a new yellow case appear without reloading, reads its evidence, acknowledges it
and assigns it to a department; the street operator sees it; the clock passes the closure
deadline and the street finds it in its supervision inbox; the community operator closes it with
feedback; an operator of another district can neither see it nor act on it. Screenshots go to
``<test output>/console``. Beside it, the security matrix over plain HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from streams import topics
from streams.api.keys import KeyStore
from streams.api.operators import LOCK_AFTER, OperatorStore, Role
from streams.app import Stack
from streams.intake.kinds import KINDS
from streams.tools.simulator import CitySimulator
from streams.worker.pipeline import now_beijing
from tests.helpers import COMMUNITY, grid_report
from tests.integration.conftest import on_kafka, produce

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = shutil.which("chromium")
STREET, DISTRICT, OTHER_DISTRICT = COMMUNITY[:9], COMMUNITY[:6], "210203"
PASSWORD = "correct-horse-battery"
OPERATORS = {  # login: (centre, name, role)
    "wang.fang": (COMMUNITY, "王芳", Role.operator),
    "zhao.lei": (STREET, "赵磊", Role.operator),
    "li.qiang": (OTHER_DISTRICT, "李强", Role.operator),
    "chen.jing": (COMMUNITY, "陈静", Role.observer),
    "sun.hao": (COMMUNITY, "孙浩", Role.operator),  # for the lockout
    "zhou.min": (COMMUNITY, "周敏", Role.operator),  # disabled while signed in
}
SHOTS = Path(os.environ.get("FENGQIAO_TEST_OUTPUT", "test-output")) / "console"


class Clock:
    """Beijing time now, plus however far the test has moved it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return now_beijing() + self.offset


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, module_kafka):
    root = tmp_path_factory.mktemp("console")
    settings = on_kafka(module_kafka, data_dir=root / "data", gateway_port=0, metrics_port=0, app_id="fq-console",
                        supervision_tick=0.2)
    operators = OperatorStore(settings.operators_path)
    for login, (centre, name, role) in OPERATORS.items():
        operators.add(centre, login, PASSWORD, name, role)
    keys = KeyStore(settings.keys_path)
    clock = Clock()
    async with Stack(settings, clock=clock) as stack:
        simulator = CitySimulator(stack.cluster, city="2102", rate=4, incident_every=20, clock=clock)
        stop = asyncio.Event()
        feeding = asyncio.create_task(simulator.run(stop))
        yield stack, clock, keys, f"http://127.0.0.1:{stack.gateway.port}"
        stop.set()
        await asyncio.wait_for(feeding, 15)


async def disputes(stack, clock: Clock, first: int) -> None:
    """Three dispute reports from the test's community: a yellow 矛盾纠纷聚集."""
    reports = [grid_report(first + n, at=clock() - timedelta(minutes=3 - n)) for n in range(3)]
    await produce(stack.bootstrap_servers, topics.GRID_REPORTS,
                  [(COMMUNITY.encode(), json.dumps(r, ensure_ascii=False).encode()) for r in reports])


async def sign_in(browser, base: str, login: str):
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/console/cases")
    assert page.url.startswith(f"{base}/console/login")  # not signed in: the sign-in page first
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/console/cases")
    return context, page


async def act(page, kind: str, note: str = "", departments: tuple[str, ...] = ()) -> None:
    form = page.locator(f"form.action[data-kind={kind}]")
    for d in departments:
        await form.locator(f"input[name=departments][value={d}]").check()
    if note:
        await form.locator("input[name=note]").fill(note)
    await form.locator("button[type=submit]").click()
    await page.wait_for_load_state()


async def until(predicate, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.2)


@pytest.mark.skipif(CHROMIUM is None, reason="make test installs Debian's chromium")
async def test_a_case_handled_in_the_browser_from_signal_to_closure(world):
    from playwright.async_api import async_playwright, expect

    stack, clock, _, base = world
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            community, page = await sign_in(browser, base, "wang.fang")
            await expect(page.get_by_test_id("operator")).to_contain_text("王芳")
            await page.evaluate("window.stayedOnPage = true")
            await disputes(stack, clock, 100)
            row = page.locator("tr.case.yellow", has_text="矛盾纠纷聚集")
            await expect(row).to_have_count(1, timeout=60_000)  # arrived over SSE, no reload
            assert await page.evaluate("window.stayedOnPage") is True
            await expect(row).to_contain_text("待签收")
            await page.screenshot(path=SHOTS / "case-list.png", full_page=True)

            await row.get_by_role("link", name="查看").click()
            await page.wait_for_url(re.compile(r".*/console/cases/sig-[0-9a-f]+$"))
            signal_id = page.url.rsplit("/", 1)[-1]
            await expect(page.get_by_test_id("explanation")).to_contain_text("矛盾纠纷")
            evidence = page.get_by_test_id("evidence").locator("tbody tr")
            await until(lambda: _reload_until(page, evidence, 3))
            text = await page.get_by_test_id("evidence").inner_text()
            assert "噪音" in text and "13812345678" not in text and "张伟" not in text  # masked
            await page.screenshot(path=SHOTS / "case-page.png", full_page=True)

            await act(page, "acknowledge")
            await expect(page.get_by_test_id("state")).to_have_text("已签收")
            await act(page, "assign", note="请派出所协助调解", departments=("police",))
            await expect(page.get_by_test_id("state")).to_have_text("已分办")
            await expect(page.get_by_test_id("history")).to_contain_text("分办：公安")

            street, street_page = await sign_in(browser, base, "zhao.lei")
            await expect(street_page.locator(f"tr[data-signal={signal_id}]")).to_contain_text("已分办")
            await street_page.screenshot(path=SHOTS / "case-list-street.png", full_page=True)
            await street_page.goto(f"{base}/console/supervision")
            await expect(street_page.locator(f"tr[data-signal={signal_id}]")).to_have_count(0)
            case = stack.desk.cases[signal_id]
            clock.offset += case.close_due - clock() + timedelta(minutes=1)  # nobody closed it in time
            await until(lambda: _has(case.overseers(), STREET))
            await street_page.reload()
            await expect(street_page.locator(f"tr[data-signal={signal_id}]")).to_contain_text("超时")
            await street_page.screenshot(path=SHOTS / "supervision-inbox.png", full_page=True)

            await page.reload()
            await act(page, "feedback", note="双方已达成调解协议")
            await act(page, "close", note="调解完毕，回访无异议")
            await expect(page.get_by_test_id("state")).to_have_text("已办结")
            await street_page.reload()
            await expect(street_page.locator(f"tr[data-signal={signal_id}]")).to_have_count(0)
            await page.goto(f"{base}/console/cases/{signal_id}/sheet")
            await expect(page.locator("h1")).to_have_text("风险预警案件处置单")
            await page.pdf(path=SHOTS / "case-sheet.pdf")

            other, other_page = await sign_in(browser, base, "li.qiang")
            answer = await other_page.goto(f"{base}/console/cases/{signal_id}")
            assert answer.status == 403
            await expect(other_page.locator(f"tr[data-signal={signal_id}]")).to_have_count(0)
            await other_page.goto(f"{base}/console/cases")
            await expect(other_page.locator(f"tr[data-signal={signal_id}]")).to_have_count(0)
            csrf = await other_page.locator("form.inline input[name=csrf]").get_attribute("value")
            refused = await other_page.request.post(f"{base}/console/cases/{signal_id}/actions",
                                                    form={"csrf": csrf, "kind": "reopen", "note": "x"})
            assert refused.status == 403
        finally:
            await browser.close()

    rows = await audit_rows(stack, signal_id, 5)  # the simulator goes on: wait for these rows, not for quiet
    assert [(r["kind"], r["actor"], r["outcome"]) for r in rows if r["outcome"] == "accepted"] == [
        ("acknowledge", "wang.fang", "accepted"), ("assign", "wang.fang", "accepted"),
        ("supervise", "fengqiao", "accepted"), ("feedback", "wang.fang", "accepted"),
        ("close", "wang.fang", "accepted")]
    assert not [r for r in rows if r["centre_code"] == OTHER_DISTRICT], "a refused page never reaches the desk"


async def audit_rows(stack, signal_id: str, accepted: int) -> list[dict]:
    """The audit rows of a case once ``accepted`` accepted ones are in ClickHouse."""
    sql = ("SELECT kind, actor, centre_code, outcome FROM fengqiao.dispatch_actions FINAL "
           "WHERE signal_id = {s:String} ORDER BY recorded_at")
    async with asyncio.timeout(60):
        while True:
            rows = await stack.store.run(stack.store.query, sql, {"s": signal_id})
            if sum(r["outcome"] == "accepted" for r in rows) >= accepted:
                return rows
            await asyncio.sleep(0.5)


async def _reload_until(page, locator, count: int) -> bool:
    """The evidence is in ClickHouse a moment after the case opens: reload until it shows."""
    if await locator.count() >= count and "—" not in await locator.first.inner_text():
        return True
    await asyncio.sleep(0.5)
    await page.reload()
    return False


async def _has(items, item) -> bool:
    return item in items


# -- the security matrix, over plain HTTP ---------------------------------------------------------------

async def signed_in(base: str, login: str, password: str = PASSWORD) -> tuple[aiohttp.ClientSession, int]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(f"{base}/console/login", data={"login": login, "password": password},
                         allow_redirects=False) as r:
        return http, r.status


async def csrf_of(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(f"{base}/console/cases") as r:
        return re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)


async def a_case(stack, clock: Clock) -> str:
    if not any(c.region_code == COMMUNITY and c.state.value != "closed" for c in stack.desk.cases.values()):
        await disputes(stack, clock, 200)
    async with asyncio.timeout(60):
        while True:
            for case in stack.desk.cases.values():
                if case.region_code == COMMUNITY and case.state.value != "closed":
                    return case.signal_id
            await asyncio.sleep(0.2)


async def test_the_security_matrix_refuses_every_wrong_credential(world):
    stack, clock, keys, base = world
    signal_id = await a_case(stack, clock)
    action = f"{base}/console/cases/{signal_id}/actions"
    async with aiohttp.ClientSession() as anonymous:  # no credential at all
        async with anonymous.get(f"{base}/console/cases", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/console/login")
        async with anonymous.get(f"{base}/console/api/cases") as r:
            assert r.status == 401
        async with anonymous.post(action, data={"kind": "acknowledge"}) as r:
            assert r.status == 401

    http, status = await signed_in(base, "wang.fang", "wrong-password-123")
    assert status == 401
    await http.close()
    for _ in range(LOCK_AFTER):
        http, status = await signed_in(base, "sun.hao", "not-his-password")
        await http.close()
    http, status = await signed_in(base, "sun.hao")  # the right password, but locked now
    assert status == 401
    async with http.get(f"{base}/console/cases", allow_redirects=False) as r:
        assert r.status == 303
    await http.close()

    http, status = await signed_in(base, "wang.fang")
    assert status == 303
    csrf = await csrf_of(http, base)
    try:
        async with http.post(action, data={"kind": "feedback", "note": "无令牌"}) as r:
            assert r.status == 403  # no CSRF token
        async with http.post(action, data={"kind": "feedback", "note": "x", "csrf": "forged"}) as r:
            assert r.status == 403
        async with http.post(action, data={"kind": "feedback", "note": "x", "csrf": csrf},
                             headers={"Origin": "https://evil.example"}) as r:
            assert r.status == 403  # another site's page posting with the operator's cookie
        async with http.post(action, data={"kind": "acknowledge", "csrf": csrf, "actor": "someone.else"},
                             allow_redirects=False) as r:
            assert r.status in (303, 409)  # the form's actor field is not read: the actor is who signed in
        async with http.post(f"{base}/console/logout", data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(f"{base}/console/api/cases") as r:
            assert r.status == 401  # the session ended with the sign-out
        async with http.post(action, data={"kind": "feedback", "note": "x", "csrf": csrf}) as r:
            assert r.status == 401
    finally:
        await http.close()

    observer, _ = await signed_in(base, "chen.jing")
    try:
        async with observer.get(f"{base}/console/cases/{signal_id}") as r:
            assert r.status == 200 and 'data-kind="acknowledge"' not in await r.text()  # sees, is offered nothing
        async with observer.post(action, data={"kind": "feedback", "note": "x", "csrf": await csrf_of(observer, base)}) as r:
            assert r.status == 403
    finally:
        await observer.close()

    for login in ("li.qiang", "zhao.lei"):  # another district; and a street, for a case it does not hold
        other, _ = await signed_in(base, login)
        try:
            async with other.get(f"{base}/console/api/cases") as r:
                listed = {c["signal_id"] for c in (await r.json())["cases"]}
            assert (signal_id in listed) == (login == "zhao.lei")
        finally:
            await other.close()

    revoked, _ = await signed_in(base, "zhou.min")
    async with revoked.get(f"{base}/console/api/cases") as r:
        assert r.status == 200
    OperatorStore(stack.settings.operators_path).disable("zhou.min")  # as `fengqiao operators disable` does
    async with revoked.get(f"{base}/console/api/cases") as r:
        assert r.status == 401  # at once, no restart
    await revoked.close()

    record, token = keys.add(f"centre:{COMMUNITY}")
    other_key = keys.add(f"centre:{OTHER_DISTRICT}")[1]
    api = f"{base}/v1/centres/{COMMUNITY}/actions"
    for credential, status in (("", 401), ("fq_wrong", 401), (other_key, 403)):
        async with aiohttp.ClientSession() as machine:
            headers = {"Authorization": f"Bearer {credential}"} if credential else {}
            async with machine.post(api, json={"signal_id": signal_id, "kind": "feedback"}, headers=headers) as r:
                assert r.status == status
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as machine:
        async with machine.post(api, json={"signal_id": signal_id, "kind": "feedback", "actor": "forged"}) as r:
            assert r.status == 422 and (await r.json())["errors"][0]["field"] == "actor"
        keys.revoke(record.id)
        async with machine.post(api, json={"signal_id": signal_id, "kind": "feedback"}) as r:
            assert r.status == 401

    actors = {r["actor"] for r in await audit_rows(stack, signal_id, 1)}
    assert actors <= {"wang.fang", "fengqiao"} and "someone.else" not in actors and "forged" not in actors


# -- every route of the OpenAPI document, fuzzed with valid credentials ------------------------------------

FUZZ_EXAMPLES = 25  # schema-valid requests per operation (and as many schema-invalid ones)


async def test_every_route_in_the_openapi_document_survives_fuzzing_with_valid_credentials(world):
    """schemathesis generates requests from /openapi.json for every route, with the credential each
    takes: no answer is a 5xx or undocumented, every schema-invalid request is refused, and a
    schema-valid one is refused only for what no JSON Schema can say (named below)."""
    stack, clock, keys, base = world
    signal_id = await a_case(stack, clock)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/openapi.json") as r:
            document = await r.json()
    served = {(r.method, r.resource.canonical.replace("{path:.+}", "{path}"))
              for r in stack.gateway.app.router.routes() if r.method != "HEAD"}
    served = {(m, p) for m, p in served if p != "/v1/{kind}"} | {("POST", f"/v1/{kind}") for kind in KINDS}
    assert served == {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}

    tokens = {"grid": keys.add("grid")[1], "broadcast": keys.add("broadcast")[1], "police": keys.add("police")[1],
              "centre": keys.add(f"centre:{COMMUNITY}")[1]}
    operator = stack.console.operators.accounts["wang.fang"]
    problems = await asyncio.to_thread(fuzz, base, document, tokens, stack.console.sessions, operator, signal_id)
    assert not problems, "\n".join(sorted(set(problems))[:30])


def fuzz(base: str, document: dict, tokens: dict[str, str], sessions, operator, signal_id: str) -> list[str]:
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(document)
    problems: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        fixed: dict = {}
        if "{code}" in op.path:
            fixed["code"] = COMMUNITY
        if "{signal_id}" in op.path:
            fixed["signal_id"] = signal_id
        if op.path == "/console/static/{path}":
            fixed["path"] = "console.css"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = op.as_strategy(generation_mode=mode, path_parameters=fixed or None)
            try:
                examples(strategy, lambda case, op=op, mode=mode: problems.extend(
                    judge(base, document, op, mode, case, tokens, sessions, operator)))
            except Exception as exc:  # hypothesis found nothing to generate (a parameterless GET has no invalid form)
                if "Unsatisfiable" not in type(exc).__name__:
                    problems.append(f"{op.method.upper()} {op.path} [{mode.value}]: {type(exc).__name__}: {exc}")
    return problems


def examples(strategy, check) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, phases=[Phase.generate], database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        check(case)

    run()


def judge(base: str, document: dict, op, mode, case, tokens, sessions, operator) -> list[str]:
    from schemathesis import GenerationMode

    path, method = op.path, op.method.lower()
    declared = set(document["paths"][path][method]["responses"])
    headers, cookies = credentials(path, tokens, sessions, operator)
    if path.endswith("/stream"):  # an answer that never ends: its status, then hang up
        import requests

        with requests.get(base + path.format(**(case.path_parameters or {})), params=case.query, headers=headers,
                          cookies=cookies, allow_redirects=False, stream=True, timeout=10) as answer:
            status, text = answer.status_code, ""
    else:
        response = case.call(base_url=base, headers=headers, cookies=cookies, allow_redirects=False, timeout=30)
        status, text = response.status_code, response.text
    where = f"{method.upper()} {path} [{mode.value}] → {status}: {text[:300]!r}"
    if status >= 500:
        return [f"server error: {where}"]
    if str(status) not in declared:
        return [f"undocumented answer: {where}"]
    if mode is GenerationMode.POSITIVE and not acceptable(path, case, status, text):
        return [f"schema-valid request refused: {method.upper()} {path} → {status} {refusal(text)}"]
    if mode is GenerationMode.NEGATIVE and status in (200, 202) and method == "post" and path.startswith("/v1/") \
            and body_broken(case):
        how = getattr(getattr(case.meta.phase, "data", None), "description", "")
        return [f"schema-invalid request accepted ({how}): {where} body={str(case.body)[:300]}"]
    return []


def credentials(path: str, tokens: dict[str, str], sessions, operator) -> tuple[dict, dict]:
    """The credential an operation takes: a publisher's key, the centre's key, or a session."""
    if path.startswith("/console/"):
        token, session = sessions.open(operator)  # its own session each time: the sign-out ends it
        return {"X-CSRF-Token": session.csrf}, {"fq_console": token}
    publisher = {"/v1/grid-reports": "grid", "/v1/emergency-broadcasts": "broadcast", "/v1/broadcast-receipts": "broadcast",
                 "/v1/dept-alerts": "police"}.get(path, "centre")
    return {"Authorization": f"Bearer {tokens[publisher]}"}, {}


# What a JSON Schema cannot say, and so a schema-valid request may still be refused for:
REGISTRY = {"unknown_region", "unknown_grid"}  # units below the county and grids: the registry and the grid
# register are the lists (the pattern keeps the counties)


def body_broken(case) -> bool:
    """Whether the generator made the body, not a header or parameter the test sets itself, invalid."""
    from schemathesis import GenerationMode

    body = next((info for where, info in (case.meta.components if case.meta else {}).items()
                 if getattr(where, "value", where) == "body"), None)
    return body is not None and body.mode is GenerationMode.NEGATIVE


DOCUMENTS_AS_TEXT = {"application/x-ndjson", "application/cap+xml"}


def refusal(text: str) -> str:
    """What a refusal names (fields and reasons), not the generated values: one line per kind of refusal."""
    try:
        doc = json.loads(text)
    except ValueError:
        found = re.search(r'role="alert"[^>]*>([^<]*)<', text)
        return found.group(1) if found else text[:120]
    return str(sorted({(e.get("field"), e.get("reason"), e.get("message", "")[:60]) for e in doc.get("errors", [])})
               or doc.get("error", ""))[:300]


def acceptable(path: str, case, status: int, text: str) -> bool:
    if status < 400:
        return True
    if path == "/v1/dept-alerts" and status == 403:
        return isinstance(case.body, dict) and case.body.get("department") != "police"  # the key is police's
    if path.endswith("/actions") and status in (403, 404, 409):
        return True  # no such case; not this centre's to do (挂牌督办 is the handler's superiors'); the case's
        # state (签收 before 分办): the desk's decisions, not the document's
    if "/silences" in path and status in (403, 404, 409):
        return True  # a region outside the jurisdiction (the path names the centre); no such silence, or ended:
        # the book's, not the document's
    if "/silences" in path and status == 422:  # now-relative times: ending in the past, over 30 days, out of order
        errors = json.loads(text).get("errors", [])
        return bool(errors) and all(e.get("reason") == "time" for e in errors)
    if path == "/console/login" and status == 401:
        return True  # a generated login and password are wrong: as they should be
    if status == 422 and case.media_type in DOCUMENTS_AS_TEXT:
        return True  # a JSON-lines batch or CAP XML: the schema says "a string"; the contract's own does the rest
    if status == 422:
        try:
            errors = json.loads(text).get("errors", [])
        except ValueError:
            return False
        return bool(errors) and all(e.get("reason") in REGISTRY for e in errors)
    return False
