"""``GET /exec-stream``: a streamed command or shell over one WebSocket (what the hub's SSH
server runs sessions on; `/exec` is request/response and keeps no stdin).

client → agent:

- first, a text frame ``{"command": "..." | null, "pty": {"term", "rows", "cols"} | null}``
  (``command`` null: a login shell);
- binary frames: stdin;
- text frames ``{"type": "eof"}`` (stdin ends), ``{"type": "resize", "rows", "cols"}``,
  ``{"type": "signal", "signal": "INT"}`` (a name from `SIGNALS`).

agent → client: binary frames whose first byte says the stream (1 stdout, 2 stderr) and
the rest is data; then one text frame ``{"type": "exit", "code": N}`` (``"signal":
"NAME"`` instead of ``code`` when a signal ended it); the client then closes the socket
(the agent does after `CLOSE_GRACE` seconds). Closing the
socket before the process exits ends its session (SIGHUP, SIGTERM, SIGKILL); what a
command that exited left running in the background (``nohup server &``) keeps running.

Flow control is the socket's: output is read from the process only as fast as the
socket sends it, and stdin is read from the socket only as fast as the process takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from typing import Any

from aiohttp import WSMsgType, web

from cocalc_k8s.agent.keys import FS
from cocalc_k8s.agent.session_process import PIPE_GRACE, PtyRequest, SessionProcess
from cocalc_k8s.core.errors import BadRequest

STDOUT, STDERR = 1, 2
MAX_MESSAGE = 1 << 20
MAX_COMMAND_CHARS = 100_000
MAX_DIMENSION = 1000
SIGNALS = {
    name: getattr(signal, "SIG" + name)
    for name in ("HUP", "INT", "QUIT", "KILL", "TERM", "USR1", "USR2", "ALRM", "PIPE")
}
START_TIMEOUT = 10.0
CLOSE_GRACE = 5.0


def _dimension(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DIMENSION


def parse_start(text: str) -> tuple[str | None, PtyRequest | None]:
    """The first message's command and pty request (pure); BadRequest when malformed."""
    try:
        message = json.loads(text)
    except ValueError:
        raise BadRequest("the first message must be JSON") from None
    if not isinstance(message, dict):
        raise BadRequest("the first message must be a JSON object")
    command = message.get("command")
    if command is not None and (
        not isinstance(command, str) or len(command) > MAX_COMMAND_CHARS or "\x00" in command
    ):
        raise BadRequest(f"'command' must be a string of at most {MAX_COMMAND_CHARS} characters")
    raw_pty = message.get("pty")
    if raw_pty is None:
        return command, None
    term = raw_pty.get("term") if isinstance(raw_pty, dict) else None
    if not isinstance(term, str) or not term.isprintable() or not 0 < len(term) <= 64:
        raise BadRequest("'pty' must be {'term', 'rows', 'cols'}")
    rows, cols = raw_pty.get("rows"), raw_pty.get("cols")
    if not (_dimension(rows) and _dimension(cols)):
        raise BadRequest(f"pty rows and cols must be integers from 1 to {MAX_DIMENSION}")
    return command, PtyRequest(term, rows, cols)


async def stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    try:
        async with asyncio.timeout(START_TIMEOUT):
            first = await ws.receive()
        if first.type != WSMsgType.TEXT:
            raise BadRequest("the first message must be a text frame")
        command, pty_request = parse_start(first.data)
        process = await SessionProcess.start(request.app[FS].home, command, pty_request)
    except (BadRequest, OSError, TimeoutError) as exc:
        message = exc.message if isinstance(exc, BadRequest) else f"could not start: {exc}"
        await ws.send_json({"type": "error", "message": message})
        await ws.close()
        return ws
    try:
        await _run(ws, process)
    finally:
        if not process.exited:
            process.kill()  # the hub went away first; what an exited command left running stays
        process.close()
    return ws


async def _run(ws: web.WebSocketResponse, process: SessionProcess) -> None:
    outputs = [
        asyncio.create_task(_forward(ws, reader, channel))
        for reader, channel in ((process.stdout, STDOUT), (process.stderr, STDERR))
        if reader is not None
    ]
    inputs = asyncio.create_task(_receive(ws, process))
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait([exited, inputs], return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            return  # the hub went away: the caller ends the session
        # Output written just before the exit is still in the pipes: read it, but do not
        # wait for ever on a background job that holds them open.
        await asyncio.wait(outputs, timeout=PIPE_GRACE)
        code = exited.result()
        status: dict[str, Any] = {"type": "exit", "code": code}
        if code < 0:
            status = {"type": "exit", "signal": signal.Signals(-code).name.removeprefix("SIG")}
        with contextlib.suppress(ConnectionError):
            await ws.send_json(status)
            # The hub closes once it has the status. Closing first could make its pending
            # writes (stdin, an EOF) fail and lose the status still unread in its buffer.
            await asyncio.wait([inputs], timeout=CLOSE_GRACE)
            await ws.close()
    finally:
        for task in (*outputs, inputs, exited):
            task.cancel()
        for task in (*outputs, inputs, exited):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _forward(ws: web.WebSocketResponse, reader: asyncio.StreamReader, channel: int) -> None:
    prefix = bytes([channel])
    while True:
        try:
            data = await reader.read(MAX_MESSAGE - 1)
        except OSError:  # EIO: the pty has no process left
            return
        if not data:
            return
        await ws.send_bytes(prefix + data)


async def _receive(ws: web.WebSocketResponse, process: SessionProcess) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            if process.stdin is not None:
                process.stdin.write(msg.data)
                with contextlib.suppress(ConnectionError):
                    await process.stdin.drain()
        elif msg.type == WSMsgType.TEXT:
            _control(process, msg.data)


def _control(process: SessionProcess, text: str) -> None:
    with contextlib.suppress(ValueError):
        message = json.loads(text)
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "eof":
            process.close_stdin()
        elif (
            kind == "resize" and _dimension(message.get("rows")) and _dimension(message.get("cols"))
        ):
            process.resize(message["rows"], message["cols"])
        elif kind == "signal" and message.get("signal") in SIGNALS:
            process.signal(SIGNALS[message["signal"]])
