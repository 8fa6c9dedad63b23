"""What every HTTP route of the gateway shares: the credential of a request, the 422 answer, and
how both are described in the OpenAPI document."""

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


async def json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's body as a JSON object, or the 422 that says it is not one."""
    try:
        body = await request.json()
    except ValueError:
        return invalid([{"field": "", "message": "the body is not JSON"}])
    if not isinstance(body, dict):
        return invalid([{"field": "", "message": "the body is a JSON object"}])
    return body


def json_answer(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties}}}}


ERROR_ANSWER = json_answer("refused, with why", {"error": {"type": "string"}})
INVALID_ANSWER = json_answer("invalid: each failing field, why, and its line in a batch", {
    "error": {"type": "string"}, "errors": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string"}, "message": {"type": "string"}, "reason": {"type": "string"},
        "line": {"type": "integer"}}}}})
# assign and coordinate need a department: in the schemas of both action routes, as the desk says it
_SOME_DEPARTMENT = {"required": ["departments"], "properties": {"departments": {"minItems": 1}}}


def needs_departments(ticked: Any) -> dict[str, Any]:
    """What an action body needs beside its kind: assign, a department or the grid workers
    (``to_grid``,交由网格办理: ``ticked`` as the body writes it, true in JSON, "on" in a form);
    coordinate, a department; to_grid, only on assign."""
    to_grid = {"required": ["to_grid"], "properties": {"to_grid": {"const": ticked}}}
    return {"allOf": [
        {"if": {"properties": {"kind": {"const": "assign"}}, "required": ["kind"]},
         "then": {"anyOf": [_SOME_DEPARTMENT, to_grid]}},
        {"if": {"properties": {"kind": {"const": "coordinate"}}, "required": ["kind"]}, "then": _SOME_DEPARTMENT},
        {"if": {"properties": {"kind": {"not": {"const": "assign"}}}, "required": ["kind"]},
         "then": {"not": to_grid}}]}


NEEDS_DEPARTMENTS = needs_departments(True)
