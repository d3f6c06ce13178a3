"""Shared terminals: the browser's WebSocket is relayed to the project agent's terminal.

Everyone who opens `/api/v2/projects/{project_id}/terminals/{name}` shares one shell (the
agent keeps it and its scrollback). The relay is registered with the hub's live
connections and closed (1008) the moment the caller may no longer use the project: a
removed collaborator, a ban, the end of the session or API key it was opened with.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import aiohttp
from aiohttp import WSMsgType, web

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.identity import Credential
from cocalc_k8s.keys import ACTIVITY, AGENTS, LIFECYCLE, LIVE_CONNECTIONS
from cocalc_k8s.web.access import ProjectAccess, project_access
from cocalc_k8s.web.auth import authenticated_at
from cocalc_k8s.web.jsonio import json_response

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
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
    ended = asyncio.Event()
    unregister = request.app[LIVE_CONNECTIONS].register(
        "terminal",
        access.principal.account_id,
        Credential.of(access.principal),
        access.project_id,
        ended.set,
        authorised_at=authenticated_at(request),
    )
    tasks = [
        asyncio.create_task(_downstream(upstream, browser)),
        asyncio.create_task(_upstream(request, access, browser, upstream)),
        asyncio.create_task(ended.wait()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        revoked = any(t is tasks[2] for t in done)
    finally:
        unregister()
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
