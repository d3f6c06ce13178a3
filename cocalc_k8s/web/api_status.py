"""A running project's resource usage (from its agent) and its agent log (from the hub)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from cocalc_k8s.keys import AGENTS, LIFECYCLE, SETTINGS
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.jsonio import json_response

LOG_TAIL_BYTES = 64 * 1024


async def usage(request: web.Request) -> web.Response:
    """Memory, CPU seconds, processes and disk of a running project; `null` when stopped."""
    access = await project_access(request)
    address = request.app[LIFECYCLE].backend.address(access.project_id)
    if address is None:
        return json_response({"usage": None})
    data = await request.app[AGENTS].call(address, "GET", "/usage", seconds=10)
    return json_response({"usage": data})


async def log(request: web.Request) -> web.Response:
    """The last 64 KiB of the project agent's log (its stdout and stderr)."""
    access = await project_access(request)
    path = request.app[SETTINGS].data_dir / "logs" / "projects" / f"{access.project_id}.log"
    text = await asyncio.to_thread(_tail, path, LOG_TAIL_BYTES)
    return web.Response(text=text, content_type="text/plain")


def _tail(path: Path, size: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
