"""``GET /watch``: the long poll of the home's file watcher (`cocalc_k8s.agent.watch`)."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.agent.keys import WATCHER
from cocalc_k8s.core.errors import BadRequest


def _number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number") from None
    return min(max(value, low), high)


async def watch(request: web.Request) -> web.Response:
    watcher = request.app[WATCHER]
    after = int(_number(request, "after", -1, -1, 2**62))
    timeout = _number(request, "timeout", 20.0, 0.0, 60.0)
    watcher.max_bytes = int(_number(request, "max_bytes", watcher.max_bytes, 1, 2**40))
    cursor, reset, changes = await watcher.changes(
        after=after, instance=request.query.get("instance", ""), wait=timeout
    )
    return web.json_response(
        {"instance": watcher.instance, "cursor": cursor, "reset": reset, "changes": changes}
    )
