"""What every HTTP route of the gateway shares: the credential of a request, the 422 answer."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def bearer(request: web.Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer …`` (or ``X-API-Key``)."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key")


def invalid(errors: list[dict[str, Any]]) -> web.Response:
    """422, naming each field that failed and why."""
    return web.json_response({"error": "invalid", "errors": errors}, status=422)
