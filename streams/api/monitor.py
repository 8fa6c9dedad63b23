"""The monitoring endpoint of a process: Prometheus metrics and the probes an orchestrator asks.

- ``GET /metrics``: the process's own registry, in Prometheus' text format;
- ``GET /healthz``: liveness, answered by the event loop itself (a blocked loop answers nothing),
  503 once a part the process cannot work without has died (the embedded broker);
- ``GET /readyz``: readiness, 200 once every part has started (the worker's steps, the dispatch
  desk caught up with its topics) and until the process begins to stop.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Monitor:
    def __init__(self, registry: CollectorRegistry, host: str, port: int,
                 alive: Callable[[], bool], ready: Callable[[], bool]) -> None:
        self.registry = registry
        self.host, self.port = host, port
        self.alive, self.ready = alive, ready
        self.app = web.Application()
        self.app.add_routes([web.get("/metrics", self.metrics), web.get("/healthz", self.healthz),
                             web.get("/readyz", self.readyz)])
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        ok = self.alive()
        return web.json_response({"status": "ok" if ok else "failed"}, status=200 if ok else 503)

    async def readyz(self, request: web.Request) -> web.Response:
        ok = self.ready()
        return web.json_response({"status": "ready" if ok else "not ready"}, status=200 if ok else 503)
