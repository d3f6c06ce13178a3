"""Shared terminals: the browser's WebSocket is relayed to the project agent's terminal.

Everyone who opens `/api/v2/projects/{project_id}/terminals/{name}` shares one shell (the
agent keeps it and its scrollback). The relay re-checks every few seconds that the caller
may still use the project, and closes the socket as soon as they may not (a removed
collaborator, a revoked session).
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import aiohttp
from aiohttp import WSMsgType, web

from cocalc_k8s.core.errors import BadRequest, DomainError
from cocalc_k8s.keys import ACTIVITY, AGENTS, CONNECTIONS, LIFECYCLE, PROJECTS, SESSIONS
from cocalc_k8s.web.access import ProjectAccess, project_access
from cocalc_k8s.web.jsonio import json_response

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
RECHECK_EVERY = 3.0
POLICY_VIOLATION = 1008


async def list_terminals(request: web.Request) -> web.Response:
    access = await project_access(request)
    address = request.app[LIFECYCLE].backend.address(access.project_id)
    if address is None:
        return json_response({"terminals": []})
    return json_response(await request.app[AGENTS].call(address, "GET", "/terminals"))


async def open_terminal(request: web.Request) -> web.StreamResponse:
    access = await project_access(request)
    name = request.match_info["name"]
    if not NAME.match(name):
        raise BadRequest("a terminal name has 1 to 64 letters, digits, '.', '_' or '-'")
    address = await request.app[LIFECYCLE].agent(
        access.project_id, account_id=access.principal.account_id, reason="opened a terminal"
    )
    upstream = await request.app[AGENTS].terminal(address, name)
    browser = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
    await browser.prepare(request)
    closed = request.app[CONNECTIONS].opened("terminal", access.principal.account_id)  # admin
    tasks = [
        asyncio.create_task(_downstream(upstream, browser)),
        asyncio.create_task(_upstream(request, access, browser, upstream)),
        asyncio.create_task(_recheck(request, access)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        revoked = any(t is tasks[2] for t in done)
    finally:
        closed()  # admin: connected clients
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await upstream.close()
    if revoked:
        await browser.close(code=POLICY_VIOLATION, message=b"access to the project ended")
    else:
        await browser.close()
    return browser


async def _downstream(
    upstream: aiohttp.ClientWebSocketResponse, browser: web.WebSocketResponse
) -> None:
    async for msg in upstream:
        if msg.type == WSMsgType.BINARY:
            await browser.send_bytes(msg.data)
        elif msg.type == WSMsgType.TEXT:
            await browser.send_str(msg.data)
        else:
            break


async def _upstream(
    request: web.Request,
    access: ProjectAccess,
    browser: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
) -> None:
    activity = request.app[ACTIVITY]
    async for msg in browser:
        if msg.type == WSMsgType.TEXT:
            await upstream.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await upstream.send_bytes(msg.data)
        else:
            break
        activity.touch(access.project_id)


async def _recheck(request: web.Request, access: ProjectAccess) -> None:
    """Returns (ending the relay) when the caller loses access."""
    principal = access.principal
    while True:
        await asyncio.sleep(RECHECK_EVERY)
        if (
            principal.via == "session"
            and await request.app[SESSIONS].principal(principal.credential) is None
        ):
            return
        try:
            await request.app[PROJECTS].access(principal, access.project_id)
        except DomainError:
            return
