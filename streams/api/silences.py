"""Silences through the gateway (静默, maintenance windows), with a centre's key:

- ``POST /v1/centres/{code}/silences``: make one (201), within the centre's jurisdiction (403
  outside it), for at most 30 days, not ending in the past (422, reason ``time``);
- ``GET /v1/centres/{code}/silences``: those of the jurisdiction not ended yet;
- ``POST /v1/centres/{code}/silences/{silence_id}/expire``: end one now (200; 404 unknown or not
  the jurisdiction's; 409 ended already).

Each change is put on the ``silences`` topic before it is answered, with who made it: the workers
read it and hold matching signals back, and ClickHouse keeps every change (留痕).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from schemas.contracts.silences import LONGEST, Silence, SilenceChange, SilenceRequest
from streams import topics
from streams.api.http import ERROR_ANSWER, INVALID_ANSWER, invalid, json_answer, json_object
from streams.runtime.followed import FollowedTable

Holder = Callable[[web.Request], "tuple[str, str] | web.Response"]


def make_silence(request: SilenceRequest, centre: str, actor: str, now: datetime) -> Silence | tuple[int, str, str]:
    """The silence a centre asks for, or why not: (status, field, message)."""
    region = request.region or centre
    if not region.startswith(centre):
        return 403, "region", f"{region}不在{centre}综治中心辖区内，不能静默"
    starts = request.starts_at or now
    if request.ends_at <= now:
        return 422, "ends_at", "ends_at is not in the future"
    if request.ends_at - starts > LONGEST:
        return 422, "ends_at", f"a silence lasts at most {LONGEST.days} days: change the rule instead"
    return Silence(silence_id=f"sil-{uuid.uuid4().hex[:16]}", centre=centre, rule_id=request.rule_id,
                   region_code=region, entity=request.entity, publisher=request.publisher, device=request.device,
                   starts_at=starts, ends_at=request.ends_at, reason=request.reason, created_by=actor, created_at=now,
                   changed_by=actor, changed_at=now)


def _order(error: Any) -> bool:
    """A time order no JSON Schema can state (ends before it starts): said as reason ``time``."""
    return "ends_at is not after starts_at" in str(error.get("msg", ""))


def expire(silence: Silence, actor: str, now: datetime) -> Silence:
    return silence.model_copy(update={"change": SilenceChange.expired, "changed_by": actor, "changed_at": now})


def in_force(silences: Iterable[Silence], centre: str, now: datetime) -> list[Silence]:
    """A jurisdiction's silences not ended yet, those ending first first."""
    return sorted((s for s in silences if s.region_code.startswith(centre) and s.change is SilenceChange.created
                   and s.ends_at > now), key=lambda s: s.ends_at)


async def keep(producer: AIOKafkaProducer, book: FollowedTable, silence: Silence) -> None:
    """On the silences topic, then in this process's book."""
    await producer.send_and_wait(topics.SILENCES.name, silence.model_dump_json().encode(), key=silence.silence_id.encode())
    book.put(silence.silence_id, silence)


class SilenceRoutes:
    def __init__(self, book: FollowedTable, producer: AIOKafkaProducer, holder: Holder, rule_ids: list[str],
                 clock: Callable[[], datetime]) -> None:
        self.book, self.producer, self.holder, self.rule_ids, self.clock = book, producer, holder, rule_ids, clock

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/centres/{code}/silences", self.post),
                web.get("/v1/centres/{code}/silences", self.get),
                web.post("/v1/centres/{code}/silences/{silence_id}/expire", self.post_expire)]

    def _silences(self) -> list[Silence]:
        return [s for s in self.book.values.values() if isinstance(s, Silence)]

    async def post(self, request: web.Request) -> web.Response:
        holder = self.holder(request)
        if isinstance(holder, web.Response):
            return holder
        centre, actor = holder
        body = await json_object(request)
        if isinstance(body, web.Response):
            return body
        try:
            asked = SilenceRequest.model_validate(body)
        except ValidationError as exc:
            return invalid([{"field": ".".join(str(p) for p in e["loc"]) or ("ends_at" if _order(e) else ""),
                             "message": e["msg"], **({"reason": "time"} if _order(e) else {})}
                            for e in exc.errors(include_url=False)])
        if asked.rule_id is not None and asked.rule_id not in self.rule_ids:
            return invalid([{"field": "rule_id", "message": f"no rule {asked.rule_id} in the pack"}])
        made = make_silence(asked, centre, actor, self.clock())
        if isinstance(made, tuple):
            status, field, message = made
            if status == 403:
                return web.json_response({"error": message}, status=403)
            return invalid([{"field": field, "message": message, "reason": "time"}])
        await keep(self.producer, self.book, made)
        return web.json_response(made.model_dump(mode="json"), status=201)

    async def get(self, request: web.Request) -> web.Response:
        holder = self.holder(request)
        if isinstance(holder, web.Response):
            return holder
        found = in_force(self._silences(), holder[0], self.clock())
        return web.json_response({"silences": [s.model_dump(mode="json") for s in found]})

    async def post_expire(self, request: web.Request) -> web.Response:
        holder = self.holder(request)
        if isinstance(holder, web.Response):
            return holder
        centre, actor = holder
        silence = self.book.values.get(request.match_info["silence_id"])
        if not isinstance(silence, Silence) or not silence.region_code.startswith(centre):
            return web.json_response({"error": f"没有静默{request.match_info['silence_id']}"}, status=404)
        now = self.clock()
        if silence.change is SilenceChange.expired or silence.ends_at <= now:
            return web.json_response({"error": "静默已结束"}, status=409)
        ended = expire(silence, actor, now)
        await keep(self.producer, self.book, ended)
        return web.json_response(ended.model_dump(mode="json"))

    def openapi(self) -> dict[str, Any]:
        code = {"name": "code", "in": "path", "required": True, "description": "the centre's code",
                "schema": {"type": "string", "pattern": r"^(\d{4}|\d{6}|\d{9}|\d{12})$"}}
        one = {"name": "silence_id", "in": "path", "required": True, "schema": {"type": "string"}}
        key = [{"apiKey": []}]
        refused = {"401": ERROR_ANSWER | {"description": "no valid centre key"},
                   "403": ERROR_ANSWER | {"description": "another centre's key, or a region outside the jurisdiction"}}
        schema = SilenceRequest.model_json_schema(mode="validation")
        schema["properties"]["rule_id"] = {"anyOf": [{"type": "string", "enum": sorted(self.rule_ids)},
                                                     {"type": "null"}], "default": None}
        schema["anyOf"] = [{"required": [name], "properties": {name: {"type": "string"}}}
                           for name in ("rule_id", "entity", "publisher", "device")]
        schema["additionalProperties"] = False
        silence = {"type": "object", "description": "a silence as kept", "properties": {
            name: {} for name in Silence.model_fields}}
        answer = {"content": {"application/json": {"schema": silence}}}
        return {
            "/v1/centres/{code}/silences": {
                "post": {"summary": "静默: hold back the signals a silence matches for a time (stored, not paged)",
                         "parameters": [code], "security": key,
                         "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
                         "responses": {"201": answer | {"description": "made"}, **refused,
                                       "422": INVALID_ANSWER}},
                "get": {"summary": "the jurisdiction's silences not ended yet", "parameters": [code], "security": key,
                        "responses": {"200": json_answer("the silences", {"silences": {"type": "array",
                                                                                       "items": silence}}),
                                      **refused}}},
            "/v1/centres/{code}/silences/{silence_id}/expire": {"post": {
                "summary": "end a silence now", "parameters": [code, one], "security": key,
                "responses": {"200": answer | {"description": "ended"}, **refused,
                              "404": ERROR_ANSWER | {"description": "no such silence in the jurisdiction"},
                              "409": ERROR_ANSWER | {"description": "ended already"}}}},
        }
