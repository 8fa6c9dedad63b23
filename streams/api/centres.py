"""The centres' routes (综治中心接口), under the gateway, with a centre's key
(``fengqiao keys add centre:CODE``); the dispatch desk decides, this only speaks HTTP.

- ``POST /v1/centres/{code}/actions``: acknowledge, assign, coordinate, feedback, close, reopen,
  oversee (挂牌督办, a centre above the handler), escalate (提级, the handler). 202 accepted;
  401 no key; 403 another centre's key or a signal outside the jurisdiction; 404 no such
  signal; 409 not allowed in the case's state, with the reason (in Chinese); 422 a bad field.
  The actor recorded is the key (``key:<id>``); a body naming an actor is refused.
- ``GET /v1/centres/{code}/cases``: the cases in the jurisdiction, open first.
- ``GET /v1/centres/{code}/stream``: Server-Sent Events, the centre's own notices as they come;
  ``?channel=drill`` the drill channel instead (演练), which is all that drills ever reach.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from schemas.contracts.actions import ActionKind, DispatchAction
from streams.api.http import ERROR_ANSWER, INVALID_ANSWER, NEEDS_DEPARTMENTS, bearer, json_answer, json_object
from streams.api.keys import KeyStore, centre_of
from streams.dispatch.desk import DispatchDesk

KEEP_ALIVE = 15.0  # seconds between comments on an idle stream


class CentreRoutes:
    def __init__(self, desk: DispatchDesk, keys: KeyStore) -> None:
        self.desk, self.keys = desk, keys

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/centres/{code}/actions", self.post_action),
                web.get("/v1/centres/{code}/cases", self.get_cases),
                web.get("/v1/centres/{code}/stream", self.get_stream)]

    @staticmethod
    def openapi() -> dict[str, Any]:
        """The centres' routes in the gateway's OpenAPI document."""
        code = {"name": "code", "in": "path", "required": True, "description": "the centre's code",
                "schema": {"type": "string", "pattern": r"^(\d{4}|\d{6}|\d{9}|\d{12})$"}}
        key = [{"apiKey": []}]
        refused = {"401": ERROR_ANSWER | {"description": "no valid centre key"},
                   "403": ERROR_ANSWER | {"description": "another centre's key"}}
        return {
            "/v1/centres/{code}/actions": {"post": {
                "summary": "an action on a case of the centre's jurisdiction (签收、分办、协同、反馈、办结、重开、挂牌督办、提级)",
                "parameters": [code], "security": key,
                "requestBody": {"required": True, "content": {"application/json": {"schema": action_request()}}},
                "responses": {
                    "200": CASE_ANSWER | {"description": "this action id was decided before: the case as it is"},
                    "202": CASE_ANSWER | {"description": "accepted: the case after it"},
                    **refused, "404": ERROR_ANSWER | {"description": "no such signal"},
                    "409": ERROR_ANSWER | {"description": "not allowed in the case's state: why, in Chinese"},
                    "422": INVALID_ANSWER}}},
            "/v1/centres/{code}/cases": {"get": {
                "summary": "the cases of the centre's jurisdiction, open first", "parameters": [code], "security": key,
                "responses": {"200": json_answer("the cases", {"cases": {"type": "array", "items": CASE}}),
                              **refused}}},
            "/v1/centres/{code}/stream": {"get": {
                "summary": "the centre's notices as they come (Server-Sent Events)", "security": key,
                "parameters": [code, {"name": "channel", "in": "query", "required": False,
                                      "schema": {"type": "string", "enum": ["live", "drill"]}}],
                "responses": {"200": {"description": "an event per notice, named by its role",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **refused}}},
        }

    def holder(self, request: web.Request) -> tuple[str, str] | web.Response:
        """(the centre of the URL, the key's actor name) if the request's key is that centre's,
        or the refusal."""
        code = request.match_info["code"]
        key = self.keys.authenticate(bearer(request))
        if key is None:
            return web.json_response({"error": "a valid centre key is required"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        if centre_of(key.publisher) != code:
            return web.json_response({"error": f"key {key.id} may not act as centre {code}"}, status=403)
        return code, f"key:{key.id}"

    def _centre(self, request: web.Request) -> str | web.Response:
        holder = self.holder(request)
        return holder if isinstance(holder, web.Response) else holder[0]

    async def post_action(self, request: web.Request) -> web.Response:
        holder = self.holder(request)
        if isinstance(holder, web.Response):
            return holder
        centre, actor = holder
        body = await json_object(request)
        if isinstance(body, web.Response):
            return body
        status, answer = await self.desk.act(centre, body, actor)
        return web.json_response(answer, status=status)

    async def get_cases(self, request: web.Request) -> web.Response:
        centre = self._centre(request)
        if isinstance(centre, web.Response):
            return centre
        return web.json_response({"cases": self.desk.cases_of(centre)})

    async def get_stream(self, request: web.Request) -> web.StreamResponse:
        centre = self._centre(request)
        if isinstance(centre, web.Response):
            return centre
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        drill = request.query.get("channel") == "drill"
        queue = self.desk.follow(centre, drill)
        try:
            await response.write(b": connected\n\n")
            while True:
                try:
                    notice = await asyncio.wait_for(queue.get(), KEEP_ALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if notice is None:  # stopping, or this client fell too far behind: reconnect
                    break
                data = json.dumps(notice.model_dump(mode="json"), ensure_ascii=False)
                await response.write(f"id: {notice.notice_id}\nevent: {notice.role.value}\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.desk.unfollow(centre, drill, queue)
        return response


CASE = {"type": "object", "description": "a case as the desk holds it", "properties": {
    "signal_id": {"type": "string"}, "state": {"type": "string", "enum": ["open", "acknowledged", "assigned", "closed"]},
    "level": {"type": "string"}, "region_code": {"type": "string"}, "handler": {"type": "string"},
    "departments": {"type": "array", "items": {"type": "string"}}, "ack_due": {"type": "string"},
    "close_due": {"type": "string"}, "rule_id": {"type": "string"}, "summary": {"type": "string"},
    "supervised_by": {"type": "array", "items": {"type": "string"}}, "history": {"type": "array"}}}
CASE_ANSWER = {"content": {"application/json": {"schema": CASE}}}


def action_request() -> dict[str, Any]:
    """What a centre sends: the dispatch action less what the gateway fills in (the centre, from
    the URL; the actor, from the credential) and less supervise, which only the desk records."""
    schema = DispatchAction.model_json_schema(mode="validation")
    defs = schema.pop("$defs", {})
    for name in ("centre_code", "actor", "schema_version"):
        schema["properties"].pop(name, None)
    schema["required"] = [r for r in schema.get("required", []) if r not in ("centre_code", "actor", "action_id",
                                                                             "occurred_at")]
    schema["properties"]["kind"] = {"type": "string", "enum": [k.value for k in ActionKind
                                                               if k is not ActionKind.supervise]}
    schema["properties"]["departments"] = {"type": "array", "items": defs["Department"],
                                           "description": "for assign and coordinate: at least one"}
    schema["additionalProperties"] = False
    schema["allOf"] = [NEEDS_DEPARTMENTS]
    return schema
