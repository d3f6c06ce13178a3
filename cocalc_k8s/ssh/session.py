"""A shell or a command of an SSH session, run inside the project by its agent's streamed
exec (`cocalc_k8s.agent.exec_stream`) and relayed both ways.

asyncssh gives the session as streams: stdin reads raise `TerminalSizeChanged`,
`SignalReceived` or `BreakReceived` when the client sends those, and end with b"" at the
client's EOF. Output is written with ``drain()``, so a slow client slows the reads from
the agent and, through the socket, the command itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncssh

log = logging.getLogger(__name__)

READ_SIZE = 1 << 16
STDOUT, STDERR = 1, 2
KNOWN_SIGNALS = {"HUP", "INT", "QUIT", "KILL", "TERM", "USR1", "USR2", "ALRM", "PIPE"}


def start_message(process: asyncssh.SSHServerProcess[bytes]) -> dict[str, Any]:
    """The agent's first message for this session: its command and pty, if any."""
    pty = None
    term = process.get_terminal_type()
    if term is not None:
        cols, rows, _, _ = process.get_terminal_size()
        pty = {"term": term, "rows": min(max(rows, 1), 1000), "cols": min(max(cols, 1), 1000)}
    return {"command": process.command, "pty": pty}


async def relay(
    process: asyncssh.SSHServerProcess[bytes],
    agent: aiohttp.ClientWebSocketResponse,
    touch: Callable[[], None],
) -> None:
    """Relay until the command exits (its status goes to the client) or either side
    goes away; the caller closes both."""
    await agent.send_json(start_message(process))
    upstream = asyncio.create_task(_client_to_agent(process, agent, touch))
    try:
        status = await _agent_to_client(process, agent, touch)
    finally:
        upstream.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await upstream
    if status is None:
        log.warning("ssh: the project's agent ended a session without an exit status")
        process.exit(255)
    elif isinstance(status, str):
        process.exit_with_signal(status)
    else:
        process.exit(status)


async def _client_to_agent(
    process: asyncssh.SSHServerProcess[bytes],
    agent: aiohttp.ClientWebSocketResponse,
    touch: Callable[[], None],
) -> None:
    while True:
        try:
            data = await process.stdin.read(READ_SIZE)
        except asyncssh.TerminalSizeChanged as change:
            rows, cols = min(max(change.height, 1), 1000), min(max(change.width, 1), 1000)
            await agent.send_json({"type": "resize", "rows": rows, "cols": cols})
            continue
        except asyncssh.SignalReceived as received:
            if received.signal in KNOWN_SIGNALS:
                await agent.send_json({"type": "signal", "signal": received.signal})
            continue
        except asyncssh.BreakReceived:
            await agent.send_json({"type": "signal", "signal": "INT"})
            continue
        if not data:
            await agent.send_json({"type": "eof"})
            return
        touch()
        await agent.send_bytes(data)


async def _agent_to_client(
    process: asyncssh.SSHServerProcess[bytes],
    agent: aiohttp.ClientWebSocketResponse,
    touch: Callable[[], None],
) -> int | str | None:
    """Output to the client; the exit code, a signal's name, or None if the agent went."""
    async for msg in agent:
        if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
            stream = process.stderr if msg.data[0] == STDERR else process.stdout
            stream.write(msg.data[1:])
            touch()
            await stream.drain()
        elif msg.type == aiohttp.WSMsgType.TEXT:
            message = json.loads(msg.data)
            if message.get("type") == "exit":
                signal = message.get("signal")
                return str(signal) if signal else int(message.get("code", 255))
            if message.get("type") == "error":
                process.stderr.write(f"{message.get('message')}\r\n".encode())
                return 1
        else:
            break
    return None
