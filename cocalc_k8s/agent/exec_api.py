"""``POST /exec``: validate the request, run it with `CommandRunner`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from cocalc_k8s.agent.execution import DEFAULT_TIMEOUT, MAX_TIMEOUT
from cocalc_k8s.agent.http import json_object
from cocalc_k8s.agent.keys import COMMANDS, FS
from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.projectfs import ProjectFS

MAX_COMMAND_CHARS = 100_000


def _timeout(value: Any) -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise BadRequest("'timeout' must be a positive number of seconds")
    if value > MAX_TIMEOUT:
        raise BadRequest(f"'timeout' must be at most {MAX_TIMEOUT:.0f} seconds")
    return float(value)


def _directory(fs: ProjectFS, rel_path: str) -> Path:
    path = fs.resolve(rel_path)
    if not path.is_dir():
        raise BadRequest("'cwd' must be a directory")
    return path


async def execute(request: web.Request) -> web.Response:
    """``{"command", "timeout"?, "cwd"?}`` → ``{"stdout", "stderr", "exit_code",
    "timed_out", "truncated"}``; the command runs in the home or in ``cwd`` inside it."""
    body = await json_object(request)
    command = body.get("command")
    if not isinstance(command, str) or not command.strip():
        raise BadRequest("'command' must be a non-empty string")
    if len(command) > MAX_COMMAND_CHARS or "\x00" in command:
        raise BadRequest(f"'command' must be at most {MAX_COMMAND_CHARS} characters, no NUL")
    timeout = _timeout(body.get("timeout"))
    cwd_arg = body.get("cwd", "")
    if not isinstance(cwd_arg, str):
        raise BadRequest("'cwd' must be a string")
    cwd = await asyncio.to_thread(_directory, request.app[FS], cwd_arg)
    result = await request.app[COMMANDS].run(command, time_limit=timeout, cwd=cwd)
    return web.json_response(result)
