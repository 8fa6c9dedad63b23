"""The HTTP gateway for publishers (部门接入网关).

aiohttp rather than FastAPI: it already serves the metrics and the webhooks' client, it runs
in the stack's own event loop with no second server, and the contracts are pydantic models either way; the OpenAPI
document is built from the same models' JSON Schemas.

``POST /v1/{kind}`` takes one JSON document, a JSONL batch (``application/x-ndjson``) or, for
broadcasts, CAP XML. A key (``Authorization: Bearer …``) names the publisher: 401 without a
valid one, 403 for a kind or a department that is not the publisher's own, 422 naming each
failing field (and line), 202 with the event ids only after the broker acknowledged every
message, 503 when the broker did not. A batch is all or nothing. An authenticated request that
fails validation is kept whole on the dead-letter topic with its reason, like invalid input
arriving on Kafka: bad input is answered and kept, never dropped. The original bytes are what
is published: the validation step behind the topic stays the one place that normalises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer

from schemas.contracts.alerts import DepartmentAlert
from schemas.contracts.broadcasts import EmergencyBroadcast
from streams import topics
from streams.api.http import ERROR_ANSWER, INVALID_ANSWER, bearer, invalid, json_answer
from streams.api.keys import KeyStore, may_publish
from streams.intake.kinds import KINDS, Invalid, Kind, parse_document
from streams.runtime.deadletter import Origin

log = logging.getLogger(__name__)
MAX_BODY = 8 << 20
MAX_BATCH = 10_000
JSONL_TYPES = {"application/x-ndjson", "application/jsonl", "application/x-jsonlines"}


class Gateway:
    def __init__(self, producer: AIOKafkaProducer, keys: KeyStore, host: str, port: int,
                 routes: Sequence[web.RouteDef] = (), paths: dict[str, Any] | None = None) -> None:
        """``routes`` served beside the publishers', ``paths`` their OpenAPI description."""
        self.producer = producer
        self.keys = keys
        self.paths = paths or {}
        self.host, self.port = host, port
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/openapi.json", self.openapi),
            web.post("/v1/{kind}", self.publish),
            *routes,
        ])
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]  # the real port when 0 was asked for
        log.info("gateway on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.paths))

    async def publish(self, request: web.Request) -> web.Response:
        kind = KINDS.get(request.match_info["kind"])
        if kind is None:
            return web.json_response({"error": f"no such kind; one of {', '.join(KINDS)}"}, status=404)
        key = self.keys.authenticate(bearer(request))
        if key is None:
            return web.json_response({"error": "a valid API key is required"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        if not may_publish(key.publisher, kind.topic.name):
            return web.json_response({"error": f"{key.publisher} may not publish {request.match_info['kind']}"},
                                     status=403)
        body = await request.read()
        parsed, errors = self._parse(kind, body, request.content_type)
        if errors:
            await self._keep(request.match_info["kind"], body, errors)
            return invalid(errors)
        if kind.model is DepartmentAlert:
            foreign = sorted({m.department.value for _, m in parsed} - {key.publisher})
            if foreign:
                return web.json_response({"error": f"{key.publisher} may not publish as {', '.join(foreign)}"},
                                         status=403)
        try:
            sent = [await self.producer.send(kind.topic.name, raw, key=kind.key(m).encode()) for raw, m in parsed]
            await asyncio.gather(*sent)
        except Exception as exc:  # not acknowledged: the publisher must retry
            log.warning("gateway could not publish to %s: %s", kind.topic.name, exc)
            return web.json_response({"error": "the broker did not acknowledge; retry"}, status=503)
        return web.json_response({"accepted": [kind.event_id(m) for _, m in parsed]}, status=202)

    async def _keep(self, kind: str, body: bytes, errors: list[dict[str, Any]]) -> None:
        """The refused body on the dead-letter topic, with the first failure as its reason."""
        first = errors[0]
        where = Origin(f"gateway/{kind}", 0, time.time_ns() // 1000)
        letter = where.dead(body, first.get("reason", "invalid_field"),
                            (f"line {first['line']}: " if "line" in first else "") + first["field"], first["message"])
        try:
            await self.producer.send_and_wait(topics.DEAD_LETTERS.name, body, key=b"gateway", headers=letter.headers())
        except Exception as exc:  # the answer still names the failure; the publisher holds the body
            log.warning("a refused body could not be kept on %s: %s", topics.DEAD_LETTERS.name, exc)

    def _parse(self, kind: Kind, body: bytes, content_type: str) -> tuple[list[tuple[bytes, Any]], list[dict[str, Any]]]:
        """(original bytes, model) for each document, and the errors that name what failed."""
        if content_type in JSONL_TYPES:
            lines = [(n, line) for n, line in enumerate(body.splitlines(), 1) if line.strip()]
            if not lines or len(lines) > MAX_BATCH:
                return [], [{"field": "", "message": f"a batch holds 1 to {MAX_BATCH} lines", "reason": "invalid_batch"}]
        else:
            lines = [(None, body)]
        docs, errors = [], []
        for n, line in lines:
            try:
                docs.append((line, parse_document(kind, line)))
            except Invalid as exc:
                errors.extend(e if n is None else {**e, "line": n} for e in exc.errors)
        return docs, errors


def openapi_document(more: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenAPI 3.1 for every route of the gateway: the publishers' (their request bodies the
    contracts' own JSON Schemas), and ``more`` (the centres' and the console's)."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "liveness", "security": [], "responses": {"200": {
            "description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/openapi.json": {"get": {"summary": "this document", "security": [], "responses": {"200": {
            "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    }
    for name, kind in KINDS.items():
        schema = kind.model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[kind.model.__name__] = schema
        ref = {"$ref": f"#/components/schemas/{kind.model.__name__}"}
        content: dict[str, Any] = {"application/json": {"schema": ref},
                                   "application/x-ndjson": {"schema": {"type": "string"}}}
        if kind.model is EmergencyBroadcast:
            content["application/cap+xml"] = {"schema": {"type": "string"}}
        paths[f"/v1/{name}"] = {"post": {
            "summary": kind.summary,
            "security": [{"apiKey": []}],
            "requestBody": {"required": True, "content": content},
            "responses": {
                "202": json_answer("acknowledged by the broker", {"accepted": {"type": "array",
                                                                              "items": {"type": "string"}}}),
                "401": ERROR_ANSWER | {"description": "no valid API key"},
                "403": ERROR_ANSWER | {"description": "not this publisher's kind or department"},
                "413": {"description": "the body is over 8 MiB"},
                "422": INVALID_ANSWER,
                "503": ERROR_ANSWER | {"description": "the broker did not acknowledge; retry"},
            },
        }}
    paths.update(more or {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "fengqiao gateway: publishers, centres, console", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "a publisher's or a centre's key"},
            "session": {"type": "apiKey", "in": "cookie", "name": "fq_console",
                        "description": "a signed-in operator's session (__Host-fq_console over https)"},
            "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                     "description": "the session's CSRF token (or the csrf form field)"}}},
    }
