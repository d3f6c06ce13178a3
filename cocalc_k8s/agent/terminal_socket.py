"""Terminal endpoints. ``GET /terminals/{name}`` upgrades to a WebSocket:

client → agent, JSON text frames::

    {"type": "input", "data": "ls\\r"}          keystrokes (binary frames are raw input too)
    {"type": "resize", "rows": 40, "cols": 120}

agent → client: binary frames of terminal output (first the scrollback), and a final text
frame ``{"type": "exit", "code": N}`` when the shell exits, after which the socket closes.
A malformed message gets ``{"type": "error", "message": …}`` and is otherwise ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

from cocalc_k8s.agent.keys import TERMINALS
from cocalc_k8s.agent.terminals import Client, Terminal, check_name
from cocalc_k8s.core.errors import NotFound

MAX_DIMENSION = 1000
MAX_MESSAGE = 1 << 20


async def list_terminals(request: web.Request) -> web.Response:
    return web.json_response({"terminals": request.app[TERMINALS].describe()})


async def kill(request: web.Request) -> web.Response:
    registry = request.app[TERMINALS]
    terminal = registry.get(request.match_info["name"])
    if terminal is None:
        raise NotFound("no such terminal")
    await registry.kill(terminal)
    return web.json_response({"ok": True, "exit_code": terminal.exit_code})


async def join(request: web.Request) -> web.WebSocketResponse:
    name = check_name(request.match_info["name"])
    terminal = request.app[TERMINALS].open(name)  # before the upgrade: failures are JSON
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    client = terminal.join()
    sender = asyncio.create_task(_send(ws, client))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                error = _apply(terminal, msg.data)
                if error:
                    await ws.send_json({"type": "error", "message": error})
            elif msg.type == WSMsgType.BINARY:
                terminal.write(msg.data)
    finally:
        terminal.leave(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return ws


async def _send(ws: web.WebSocketResponse, client: Client) -> None:
    """Forward the client's queue to its socket until told to close."""
    with contextlib.suppress(ConnectionError):
        while (item := await client.get()) is not None:
            if isinstance(item, bytes):
                await ws.send_bytes(item)
            else:
                await ws.send_json(item)
    await ws.close()


def _apply(terminal: Terminal, text: str) -> str | None:
    """Carry out one client message; the error to report, if any."""
    try:
        message: Any = json.loads(text)
    except ValueError:
        return "messages must be JSON"
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "input" and isinstance(message.get("data"), str):
        terminal.write(message["data"].encode())
        return None
    if kind == "resize":
        rows, cols = message.get("rows"), message.get("cols")
        if all(_dimension(v) for v in (rows, cols)):
            terminal.resize(rows, cols)
            return None
        return f"rows and cols must be integers from 1 to {MAX_DIMENSION}"
    return "unknown message: expected input or resize"


def _dimension(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DIMENSION
