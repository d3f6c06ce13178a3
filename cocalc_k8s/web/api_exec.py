"""POST /api/v2/projects/{project_id}/exec: run a command in the project (started first
if it is stopped) and return its output."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.keys import ACTIVITY, AGENTS, LIFECYCLE
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.jsonio import json_response, read_json

MAX_TIMEOUT = 3600


def _timeout(value: Any) -> float:
    if value is None:
        return 30.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise BadRequest("timeout must be a positive number of seconds")
    if value > MAX_TIMEOUT:
        raise BadRequest(f"timeout must be at most {MAX_TIMEOUT} seconds")
    return float(value)


async def execute(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    command = body.get("command")
    if not isinstance(command, str) or not command.strip():
        raise BadRequest("command is required")
    timeout = _timeout(body.get("timeout"))
    forwarded: dict[str, Any] = {"command": command, "timeout": timeout}
    if "cwd" in body:
        forwarded["cwd"] = body["cwd"]
    address = await request.app[LIFECYCLE].agent(
        access.project_id, account_id=access.principal.account_id, reason="ran a command"
    )
    request.app[ACTIVITY].touch(access.project_id)
    result = await request.app[AGENTS].call(
        address, "POST", "/exec", body=forwarded, seconds=timeout + 15
    )
    return json_response(result)
