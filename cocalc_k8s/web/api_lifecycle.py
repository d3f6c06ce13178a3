"""Start, stop, restart a project, and follow its progress (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from cocalc_k8s.core.identity import Credential
from cocalc_k8s.core.project_state import ProjectState
from cocalc_k8s.keys import LIFECYCLE, LIVE_CONNECTIONS
from cocalc_k8s.web.access import ProjectAccess, project_access
from cocalc_k8s.web.auth import authenticated_at
from cocalc_k8s.web.jsonio import json_response

SETTLED = {ProjectState.RUNNING.value, ProjectState.STOPPED.value, ProjectState.FAILED.value}
KEEPALIVE = 15.0


async def _request(request: web.Request, action: str) -> web.Response:
    access = await project_access(request)
    manager = request.app[LIFECYCLE]
    await manager.request(access.project_id, action, account_id=access.principal.account_id)
    return json_response({"state": (await manager.state(access.project_id)).value}, status=202)


async def start_project(request: web.Request) -> web.Response:
    return await _request(request, "start")


async def stop_project(request: web.Request) -> web.Response:
    return await _request(request, "stop")


async def restart_project(request: web.Request) -> web.Response:
    return await _request(request, "restart")


async def progress(request: web.Request) -> web.StreamResponse:
    """Events `{"state", "message"?, "percent"?, "error"?}`.

    By default the stream ends when the project settles (running, stopped or failed).
    `?wait=1`: the caller is about to send (or has sent) a start/stop/restart request and
    wants to see it through: the stream ends with the event `{"state", "done": action}`
    sent when that request has been handled, even if nothing had to change.
    `?follow=1` keeps the stream open. It ends at once when the caller loses access
    (a revoked session or key, a ban, removal from the project)."""
    access = await project_access(request)
    manager = request.app[LIFECYCLE]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    async with manager.subscribe(access.project_id) as events:
        unregister = request.app[LIVE_CONNECTIONS].register(
            "progress",
            access.principal.account_id,
            Credential.of(access.principal),
            access.project_id,
            lambda: events.put_nowait({"closing": True}),  # ends it as the hub's shutdown does
            authorised_at=authenticated_at(request),
        )
        try:
            return await _stream(request, access, response, events)
        finally:
            unregister()


async def _stream(
    request: web.Request,
    access: ProjectAccess,
    response: web.StreamResponse,
    events: asyncio.Queue[Any],
) -> web.StreamResponse:
    manager = request.app[LIFECYCLE]
    follow = request.query.get("follow") == "1"
    state = (await manager.state(access.project_id)).value
    first: dict[str, Any] = {"state": state}
    last = manager.last_progress(access.project_id)
    if state == ProjectState.STARTING.value and last:
        first = last
    await _send(response, first)
    if state in SETTLED and not follow and not _pending(request):
        return response
    while True:
        try:
            event = await asyncio.wait_for(events.get(), KEEPALIVE)
        except TimeoutError:
            event = {}
        if event.get("closing"):
            return response
        try:
            if event:
                await _send(response, event)
            else:
                await response.write(b": keep-alive\n\n")
        except ConnectionResetError:  # the browser went away: nothing left to do
            return response
        if follow:
            continue
        if "done" in event if _pending(request) else event.get("state") in SETTLED:
            return response


def _pending(request: web.Request) -> bool:
    """`?wait=1`: the caller just asked for a change and wants to see it happen."""
    return request.query.get("wait") == "1"


async def _send(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(event)}\n\n".encode())


def routes() -> list[web.AbstractRouteDef]:
    base = "/api/v2/projects/{project_id}"
    return [
        web.post(base + "/start", start_project),
        web.post(base + "/stop", stop_project),
        web.post(base + "/restart", restart_project),
        web.get(base + "/progress", progress),
    ]
