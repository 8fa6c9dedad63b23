"""The centres' console (综治中心工作台): cases handled in a browser by named operators, live.

Server-rendered with Jinja2 (autoescaped) and htmx, vendored from the npm registry under
``static/vendor`` (its SSE extension refreshes the case list as notices arrive). Every page
needs a signed-in operator (``streams.api.operators``); what a page shows and what an action
may touch is the operator's centre's jurisdiction, decided by the dispatch desk, which also
decides every action, in Chinese when it refuses. The actor recorded is the signed-in operator.

Routes (all under ``/console``): ``login`` and ``logout``; ``cases`` (the list, with filters,
and ``cases/rows``, the fragment htmx reloads); ``cases/{id}`` (the case page), its ``actions``
(a form POST) and ``sheet`` (printable); ``supervision`` (督办箱); ``stream`` (the centre's
notices as Server-Sent Events); ``api/cases`` (the list as JSON). Every POST carries the
session's CSRF token (a form field or the ``X-CSRF-Token`` header) and, when the browser sends
one, an ``Origin`` of this site; the session cookie is HttpOnly, SameSite=Strict, and Secure
whenever the console is reached over https.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web

from schemas.contracts.actions import ActionKind
from schemas.contracts.alerts import departments
from schemas.contracts.levels import RiskLevel
from schemas.reference.matters import catalogue
from schemas.reference.regions import CENTRE_LEVEL_NAMES, Level, UnknownRegion, level_of_centre, registry
from streams.api.http import needs_departments
from streams.api.operators import ROLE_LABEL, Grant, Operator, OperatorStore, Session, Sessions, SignInRefused, csrf_ok
from streams.detection import risk
from streams.dispatch.case import ACTION_LABEL, LABEL, Case, CaseState
from streams.dispatch.desk import DispatchDesk
from streams.store.casefile import case_file
from streams.store.clickhouse import Store

log = logging.getLogger(__name__)

KEEP_ALIVE = 15.0
ENTITY_LABEL = {"person": "人员（化名）", "building": "楼栋", "community": "社区", "township": "街道",
                "county": "区县", "city": "城市", "grid": "网格", "broadcast": "预警广播", "device": "设备"}
SOURCE_LABEL = {"grid_report": "网格上报", "broadcast": "应急广播", "dept_alert": "部门预警",
                "broadcast_receipt": "广播回执", "signal": "前序信号"}
# The actions a centre sends from the case page, in the order they are offered.
OFFERED = (ActionKind.acknowledge, ActionKind.assign, ActionKind.coordinate, ActionKind.feedback, ActionKind.close,
           ActionKind.reopen, ActionKind.oversee, ActionKind.escalate)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}

Handler = Callable[[web.Request, Operator, Session], Awaitable[web.StreamResponse]]


def remaining(due: datetime, now: datetime) -> tuple[str, bool]:
    """A deadline as an operator reads it: 剩2小时13分, or 超时35分 once passed."""
    seconds = int((due - now).total_seconds())
    over = seconds < 0
    minutes = abs(seconds) // 60
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    text = (f"{days}天" if days else "") + (f"{hours}小时" if hours or days else "") + f"{mins}分"
    return ("超时" if over else "剩") + text, over


def when(value: datetime | str, fmt: str = "%m-%d %H:%M") -> str:
    """A time as the console shows it; ClickHouse gives times as text in Beijing time."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime(fmt)


def centre_name(code: str) -> str:
    """大连市中山区人民路街道 乡镇（街道）综治中心."""
    try:
        return f"{registry().full_name(code)}{CENTRE_LEVEL_NAMES[level_of_centre(code)]}"
    except (UnknownRegion, ValueError, KeyError):
        return code


def place_names(code: str) -> list[tuple[str, str]]:
    """(level, name) from the city down to the place itself."""
    try:
        chain = registry().ancestors(code)
    except UnknownRegion:
        return [("", code)]
    return [(r.level.value, r.name) for r in reversed(chain) if r.level is not Level.province]


class CentreConsole:
    def __init__(self, desk: DispatchDesk, operators: OperatorStore, store: Store | None, base: str,
                 rule_names: dict[str, str], sessions: Sessions | None = None) -> None:
        self.desk, self.operators, self.store = desk, operators, store
        self.base = base.rstrip("/")
        self.prefix = "/console"  # base may be a proxy's address; the routes are always here
        self.rule_names = {risk.RULE_ID: risk.RULE_NAME, **rule_names}
        self.sessions = sessions or Sessions()
        self.secure = self.base.startswith("https://")
        self.cookie = "__Host-fq_console" if self.secure else "fq_console"
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("streams.api", "templates"),
                                      autoescape=jinja2.select_autoescape(("html",)), undefined=jinja2.StrictUndefined)
        self.env.filters["when"] = when
        self.env.globals.update(level_label=lambda v: RiskLevel(v).label(), state_label=lambda v: LABEL[CaseState(v)],
                                action_label=lambda v: ACTION_LABEL[ActionKind(v)], centre_name=centre_name,
                                department_name=lambda d: departments()[d].name if d in departments() else d,
                                rule_name=lambda r: self.rule_names.get(r, r), prefix=self.prefix,
                                matter_name=lambda m: catalogue().get(m).name if m in catalogue() else m)

    def routes(self) -> list[web.RouteDef]:
        p = "/console"
        return [
            web.get(p, self.home), web.get(f"{p}/", self.home),
            web.get(f"{p}/login", self.login_page), web.post(f"{p}/login", self.login),
            web.post(f"{p}/logout", self.signed_in(self.logout)),
            web.get(f"{p}/cases", self.signed_in(self.case_list)),
            web.get(f"{p}/cases/rows", self.signed_in(self.case_rows)),
            web.get(f"{p}/cases/{{signal_id}}", self.signed_in(self.case_page)),
            web.post(f"{p}/cases/{{signal_id}}/actions", self.signed_in(self.case_action, Grant.act)),
            web.get(f"{p}/cases/{{signal_id}}/sheet", self.signed_in(self.case_sheet)),
            web.get(f"{p}/supervision", self.signed_in(self.supervision)),
            web.get(f"{p}/stream", self.signed_in(self.stream)),
            web.get(f"{p}/api/cases", self.signed_in(self.api_cases)),
            web.get(f"{p}/static/{{path:.+}}", self.static),
        ]

    @staticmethod
    def openapi() -> dict[str, Any]:
        """The console's routes in the gateway's OpenAPI document: pages (HTML) and the JSON list."""
        session, posting = [{"session": []}], [{"session": [], "csrf": []}]
        html = {"content": {"text/html": {"schema": {"type": "string"}}}}
        page = {"200": html | {"description": "the page"}, "303": {"description": "not signed in: to the sign-in page"},
                "401": html | {"description": "not signed in (a request of htmx)"}}
        one = {"name": "signal_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        filters = [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in (("level", "red, orange, yellow or blue"), ("rule", "a rule id"),
                                ("place", "part of a place's name, or a code prefix"),
                                ("state", "open, acknowledged, assigned, closed, or active (not closed)"))]
        refused = {"403": html | {"description": "outside the jurisdiction, or a role that may not"},
                   "404": html | {"description": "no such case"}}

        def form(props: dict[str, Any], required: list[str], *more: dict[str, Any]) -> dict[str, Any]:
            schema = {"type": "object", "properties": props, "required": required} | ({"allOf": list(more)} if more else {})
            return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}

        home = {"get": {"summary": "the console: to the case list", "security": [],
                        "responses": {"303": {"description": "to /console/cases"}}}}
        return {
            "/console": home, "/console/": home,
            "/console/login": {
                "get": {"summary": "the sign-in page", "security": [], "responses": {"200": html | {"description": "ok"}},
                        "parameters": [{"name": "next", "in": "query", "required": False, "schema": {"type": "string"}}]},
                "post": {"summary": "sign in: a session cookie, then the page asked for", "security": [],
                         "requestBody": form({"login": {"type": "string"}, "password": {"type": "string"},
                                              "next": {"type": "string"}}, ["login", "password"]),
                         "responses": {"303": {"description": "signed in"},
                                       "401": html | {"description": "wrong login or password, locked or disabled"},
                                       "503": html | {"description": "the accounts file cannot be written"},
                                       "403": html | {"description": "posted from another site"}}}},
            "/console/logout": {"post": {"summary": "sign out: the session ends", "security": posting,
                                         "responses": {"303": {"description": "signed out"},
                                                       "401": html | {"description": "not signed in"},
                                                       "403": html | {"description": "no or a wrong CSRF token"}}}},
            "/console/cases": {"get": {"summary": "the case list of the operator's jurisdiction",
                                       "security": session, "parameters": filters, "responses": page}},
            "/console/cases/rows": {"get": {"summary": "the case list's rows (reloaded by htmx)",
                                            "security": session, "parameters": filters, "responses": page}},
            "/console/cases/{signal_id}": {"get": {"summary": "a case: places, entity, evidence, rule chain, history",
                                                   "security": session, "parameters": [one],
                                                   "responses": page | refused}},
            "/console/cases/{signal_id}/sheet": {"get": {"summary": "the printable case sheet", "security": session,
                                                         "parameters": [one], "responses": page | refused}},
            "/console/cases/{signal_id}/actions": {"post": {
                "summary": "an action on the case, by the signed-in operator", "security": posting,
                "parameters": [one],
                "requestBody": form({"csrf": {"type": "string"},
                                     "kind": {"type": "string", "enum": [k.value for k in OFFERED]},
                                     "departments": {"type": "array", "items": {"type": "string",
                                                                                "enum": sorted(departments())}},
                                     "to_grid": {"type": "string", "enum": ["on"],
                                                 "description": "assign: to the grid workers (交由网格办理)"},
                                     "note": {"type": "string", "maxLength": 4000}}, ["kind"], needs_departments("on")),
                "responses": {"303": {"description": "done: back to the case page"},
                              "401": html | {"description": "not signed in"}, **refused,
                              "409": html | {"description": "not allowed in the case's state: why, in Chinese"},
                              "422": html | {"description": "a field is wrong: which and why"}}}},
            "/console/supervision": {"get": {"summary": "督办箱: the cases the centre supervises below it",
                                             "security": session, "responses": page}},
            "/console/stream": {"get": {"summary": "the centre's notices as they come (Server-Sent Events)",
                                        "security": session, "responses": {
                                            "200": {"description": "an event per notice",
                                                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                                            "303": {"description": "not signed in"}}}},
            "/console/api/cases": {"get": {
                "summary": "the case list as JSON", "security": session, "parameters": filters,
                "responses": {"200": {"description": "the cases", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"cases": {"type": "array", "items": {"type": "object"}}}}}}},
                    "401": {"description": "not signed in", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"error": {"type": "string"}}}}}}}}},
            "/console/static/{path}": {"get": {
                "summary": "the console's stylesheet and its vendored scripts", "security": [],
                "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file", "content": {"text/css": {"schema": {"type": "string"}},
                                                                            "text/javascript": {"schema": {"type": "string"}}}},
                              "404": {"description": "no such file"}}}},
        }

    # -- who is asking -------------------------------------------------------------------------
    def operator_of(self, request: web.Request) -> tuple[Operator, Session] | None:
        token = request.cookies.get(self.cookie)
        session = self.sessions.get(token)
        if session is None:
            return None
        operator = self.operators.current(session.login, session.epoch)
        if operator is None:  # disabled, or its password changed, since it signed in
            self.sessions.close(token)
            return None
        return operator, session

    def signed_in(self, handler: Handler, grant: Grant = Grant.read) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """``handler`` for a signed-in operator holding ``grant``; a POST also needs the session's
        CSRF token and, if the browser says where it comes from, this site as its origin."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            who = self.operator_of(request)
            if who is None:
                if request.method == "GET" and not request.headers.get("HX-Request") \
                        and not request.path.startswith(f"{self.prefix}/api/"):
                    raise web.HTTPSeeOther(f"{self.prefix}/login?" + urlencode({"next": request.path_qs}))
                return self._refuse(request, 401, "请先登录", {"HX-Redirect": f"{self.prefix}/login"})
            operator, session = who
            if request.method == "POST":
                form = await request.post()
                presented = request.headers.get("X-CSRF-Token") or form.get("csrf")
                if not self._same_origin(request) or not csrf_ok(session, presented if isinstance(presented, str) else None):
                    return self._refuse(request, 403, "请求无效（缺少或错误的 CSRF 令牌），请刷新页面后重试",
                                        operator=operator, session=session)
            if not operator.may(grant):
                return self._refuse(request, 403, f"{ROLE_LABEL[operator.role]}无权办理案件", operator=operator,
                                    session=session)
            return await handler(request, operator, session)
        return guarded

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if not origin:
            return True  # not sent by every browser on every POST: the CSRF token decides
        return urlsplit(origin).netloc in {request.host, urlsplit(self.base).netloc}

    # -- rendering ---------------------------------------------------------------------------------
    def _html(self, template: str, status: int = 200, operator: Operator | None = None, **context: Any) -> web.Response:
        if operator is not None:  # the page's header: who is signed in, where, and the sign-out form
            context |= {"my_centre": centre_name(operator.centre), "may_act": operator.may(Grant.act),
                        "role_label": ROLE_LABEL[operator.role]}
        body = self.env.get_template(template).render(me=operator, **context)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                            headers=SECURITY_HEADERS)

    def _page(self, template: str, operator: Operator, session: Session, status: int = 200, **context: Any) -> web.Response:
        return self._html(template, status, operator, csrf=session.csrf, **context)

    def _refuse(self, request: web.Request, status: int, message: str, headers: dict[str, str] | None = None,
                operator: Operator | None = None, session: Session | None = None) -> web.Response:
        if request.path.startswith(f"{self.prefix}/api/") or "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"error": message}, status=status, headers=headers)
        if operator is not None and session is not None:
            response = self._page("error.html", operator, session, status, message=message)
        else:
            response = self._html("error.html", status, message=message)
        response.headers.update(headers or {})
        return response

    # -- signing in and out ----------------------------------------------------------------------
    async def home(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther(f"{self.prefix}/cases")

    async def login_page(self, request: web.Request) -> web.Response:
        return self._html("login.html", next=_local(request.query.get("next")), error="", login="")

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        login, password = str(form.get("login", "")).strip(), str(form.get("password", ""))
        target = _local(str(form.get("next", ""))) or f"{self.prefix}/cases"
        if not self._same_origin(request):
            return self._html("login.html", 403, next=target, error="请求来源无效", login=login)
        try:
            operator = await asyncio.to_thread(self.operators.sign_in, login, password)
        except SignInRefused as refused:
            log.info("console sign-in refused for %r: %s", login, refused)
            return self._html("login.html", 401, next=target, error=str(refused), login=login)
        except OSError as exc:  # the accounts file cannot be written: no sign-in, rather than no lockout
            log.error("operators file cannot be written (%s): sign-ins refused until it can", exc)
            return self._html("login.html", 503, next=target, error="账号库暂不可写，请联系管理员", login=login)
        token, _ = self.sessions.open(operator)
        log.info("operator %s of centre %s signed in", operator.login, operator.centre)
        response = web.HTTPSeeOther(target)
        response.set_cookie(self.cookie, token, path="/", httponly=True, secure=self.secure, samesite="Strict")
        raise response

    async def logout(self, request: web.Request, operator: Operator, session: Session) -> web.Response:
        self.sessions.close(request.cookies.get(self.cookie))
        response = web.HTTPSeeOther(f"{self.prefix}/login")
        response.del_cookie(self.cookie, path="/")
        raise response

    # -- the case list ----------------------------------------------------------------------------
    def _rows(self, operator: Operator, query: Any) -> list[dict[str, Any]]:
        now = self.desk.clock()
        wanted = {k: str(query.get(k, "")).strip() for k in ("level", "rule", "place", "state")}
        rows = []
        for case in self.desk.cases_in(operator.centre):
            if wanted["level"] and case.level.value != wanted["level"]:
                continue
            if wanted["rule"] and case.rule_id != wanted["rule"]:
                continue
            if wanted["state"] == "active" and case.state is CaseState.closed:
                continue
            if wanted["state"] not in ("", "active") and case.state.value != wanted["state"]:
                continue
            place = registry().name_of(case.region_code)
            if wanted["place"] and wanted["place"] not in place and not case.region_code.startswith(wanted["place"]):
                continue
            rows.append(self._row(case, now) | {"place": place})
        rows.sort(key=lambda r: (r["state"] == "closed", r["level_grade"], r["due_at"]))
        return rows

    def _row(self, case: Case, now: datetime) -> dict[str, Any]:
        ack, ack_over = remaining(case.ack_due, now)
        close, close_over = remaining(case.close_due, now)
        due_at = case.ack_due if case.state is CaseState.open else case.close_due
        return {"signal_id": case.signal_id, "level": case.level.value, "level_grade": case.level.grade,
                "rule_id": case.rule_id, "summary": case.summary, "state": case.state.value,
                "handler": case.handler, "departments": case.departments, "due_at": due_at,
                "ack": ack, "ack_over": ack_over and case.state is CaseState.open,
                "close": close, "close_over": close_over and case.state is not CaseState.closed,
                "supervised_by": case.overseers(), "matters": case.matters, "to_grid": case.to_grid}

    async def case_list(self, request: web.Request, operator: Operator, session: Session) -> web.Response:
        cases = self.desk.cases_in(operator.centre)
        return self._page("cases.html", operator, session, rows=self._rows(operator, request.query),
                          filters={k: request.query.get(k, "") for k in ("level", "rule", "place", "state")},
                          rules=sorted({c.rule_id for c in cases}), levels=[lv.value for lv in RiskLevel],
                          states=[s.value for s in CaseState], query=request.query_string)

    async def case_rows(self, request: web.Request, operator: Operator, session: Session) -> web.Response:
        return self._page("_rows.html", operator, session, rows=self._rows(operator, request.query))

    async def api_cases(self, request: web.Request, operator: Operator, session: Session) -> web.Response:
        rows = self._rows(operator, request.query)
        return web.json_response({"cases": [{k: v for k, v in r.items() if k not in ("level_grade", "due_at")}
                                            for r in rows]})

    # -- one case -------------------------------------------------------------------------------------
    def _case(self, request: web.Request, operator: Operator, session: Session) -> Case | web.Response:
        signal_id = request.match_info["signal_id"]
        case = self.desk.case_of(operator.centre, signal_id)
        if case is None:
            exists = signal_id in self.desk.cases
            return self._refuse(request, 403 if exists else 404,
                                f"案件{signal_id}不在本中心辖区内，无权查看" if exists else f"没有案件{signal_id}",
                                operator=operator, session=session)
        return case

    async def _file(self, case: Case) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
        """The signal and its evidence from ClickHouse, or why they cannot be shown."""
        if self.store is None:
            return None, [], "本网关未连接 ClickHouse，证据请在分析库中查询"
        try:
            signal, evidence = await self.store.run(case_file, self.store, case.signal_id)
        except Exception as exc:  # the store is down: the case itself is still shown and handled
            log.warning("case file of %s not read: %s", case.signal_id, exc)
            return None, [], "ClickHouse 暂不可用，证据稍后可见"
        return signal, evidence, "" if signal else "信号尚未写入分析库，证据稍后可见"

    async def _case_context(self, case: Case, operator: Operator) -> dict[str, Any]:
        signal, evidence, missing = await self._file(case)
        now = self.desk.clock()
        offered = [k.value for k in OFFERED if case.refuse(k, operator.centre) is None]
        return {"case": self._row(case, now), "c": case, "signal": signal, "evidence": evidence, "missing": missing,
                "places": place_names(case.region_code), "history": case.history, "offered": offered,
                "entity_label": ENTITY_LABEL.get(signal["entity_level"], signal["entity_level"]) if signal else "",
                "source_label": SOURCE_LABEL, "departments": sorted(departments().values(), key=lambda d: d.code),
                "not_for_grids": catalogue().not_for_grids(case.matters), "now": now}

    async def case_page(self, request: web.Request, operator: Operator, session: Session) -> web.Response:
        case = self._case(request, operator, session)
        if isinstance(case, web.Response):
            return case
        return self._page("case.html", operator, session, error="", done=request.query.get("done", ""),
                          **await self._case_context(case, operator))

    async def case_sheet(self, request: web.Request, operator: Operator, session: Session) -> web.Response:
        case = self._case(request, operator, session)
        if isinstance(case, web.Response):
            return case
        return self._page("sheet.html", operator, session, **await self._case_context(case, operator))

    async def case_action(self, request: web.Request, operator: Operator, session: Session) -> web.Response:
        case = self._case(request, operator, session)
        if isinstance(case, web.Response):
            return case
        form = await request.post()
        body: dict[str, Any] = {"signal_id": case.signal_id, "kind": str(form.get("kind", "")),
                                "departments": [str(d) for d in form.getall("departments", [])],
                                "note": str(form.get("note", ""))}
        if "to_grid" in form:  # a checkbox: "on" when ticked, not sent when not
            if form["to_grid"] != "on":
                return self._page("case.html", operator, session, 422, error="to_grid: 勾选为 on，不勾选则不发送",
                                  done="", **await self._case_context(case, operator))
            body["to_grid"] = True
        status, answer = await self.desk.act(operator.centre, body, operator.login)
        if status in (200, 202):
            raise web.HTTPSeeOther(f"{self.prefix}/cases/{case.signal_id}?done={body['kind']}")
        error = answer.get("error", "")
        if status == 422:
            error = "；".join(f"{e['field']}: {e['message']}" for e in answer.get("errors", []))
        return self._page("case.html", operator, session, status, error=error, done="",
                          **await self._case_context(case, operator))

    # -- supervision and the live stream ---------------------------------------------------------------
    async def supervision(self, request: web.Request, operator: Operator, session: Session) -> web.Response:
        now = self.desk.clock()
        rows = [self._row(c, now) | {"place": registry().name_of(c.region_code)} for c in self.desk.inbox(operator.centre)]
        return self._page("supervision.html", operator, session, rows=rows)

    async def stream(self, request: web.Request, operator: Operator, session: Session) -> web.StreamResponse:
        """The centre's notices as they come; the page reloads its rows on each."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue = self.desk.follow(operator.centre, False)
        try:
            await response.write(b": connected\n\n")
            while self.operators.current(operator.login, operator.epoch) is not None:
                try:
                    notice = await asyncio.wait_for(queue.get(), KEEP_ALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if notice is None:
                    break
                data = json.dumps({"signal_id": notice.signal_id, "role": notice.role.value,
                                   "level": notice.level.value, "summary": notice.summary}, ensure_ascii=False)
                await response.write(f"event: notice\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.desk.unfollow(operator.centre, False, queue)
        return response

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["path"]
        root = resources.files("streams.api").joinpath("static")
        parts = name.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise web.HTTPNotFound()
        item = root.joinpath(*parts)
        suffix = "." + name.rsplit(".", 1)[-1]
        if not item.is_file() or suffix not in STATIC_TYPES:
            raise web.HTTPNotFound()
        return web.Response(body=item.read_bytes(), content_type=STATIC_TYPES[suffix], charset="utf-8",
                            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


def _local(target: str | None) -> str:
    """A next-page address only if it stays on this site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return ""
    return target
