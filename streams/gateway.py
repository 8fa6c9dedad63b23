"""The HTTP gateway for publishers (aiohttp: already under Faust, same event loop, no extra server).

``POST /v1/grid-reports`` takes one grid report as JSON, checks it against the published
contract, and answers 202 with its event id only after the broker acknowledged it; 422 names
the field that failed. The validation step behind the topic remains the one place that
normalises and pseudonymises.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from schemas.events import GridReport
from streams import topics

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]), "message": str(e["msg"]).removeprefix("Value error, ")}
        for e in exc.errors(include_url=False)
    ]


class Gateway:
    def __init__(self, producer: AIOKafkaProducer, host: str, port: int) -> None:
        self.producer = producer
        self.host, self.port = host, port
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.add_routes([
            web.get("/healthz", self.healthz),
            web.post("/v1/grid-reports", self.grid_report),
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

    async def grid_report(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            report = GridReport.model_validate_json(body)
        except ValidationError as exc:
            return web.json_response({"error": "invalid", "errors": field_errors(exc)}, status=422)
        await self.producer.send_and_wait(topics.GRID_REPORTS.name, body, key=report.grid_code.encode())
        return web.json_response({"accepted": [report.event_id]}, status=202)
