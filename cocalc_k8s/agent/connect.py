"""The agent's connect service: how the hub reaches a port inside the project's own network
namespace (a sandboxed local project has a loopback of its own, which the hub cannot see).

On a Unix socket the hub handed over (never a path inside the project), each connection
carries one request, a line ``<token> <port>\\n``. The agent connects to that port on the
project's loopback (127.0.0.1, then ::1) and sends the connected TCP socket back with
SCM_RIGHTS, with the line ``ok\\n``; or, without a descriptor, ``error <message>\\n``. The
hub then owns a plain TCP socket inside the project's namespace: the proxy pools and
splices it like any other upstream connection, and no byte of the traffic passes through
the agent.

The token is the agent's own (the one its HTTP API demands); a request without it gets
``error`` and nothing is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket

log = logging.getLogger(__name__)

REQUEST_LIMIT = 512
CONNECT_TIMEOUT = 5.0
LOOPBACKS = (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6))


def parse_request(line: bytes, token: str) -> int:
    """The port asked for (pure); ValueError with the reason for anything else."""
    given, _, port_text = line.strip().decode("latin-1").partition(" ")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ValueError("not authorised")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("invalid port")
    return int(port_text)


async def connect_loopback(port: int) -> socket.socket:
    """A TCP socket connected to `port` on this namespace's loopback (IPv4 first)."""
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for host, family in LOOPBACKS:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.sock_connect(sock, (host, port))
        except (OSError, TimeoutError) as exc:
            sock.close()
            error = exc if isinstance(exc, OSError) else OSError(f"timed out: {exc}")
            continue
        return sock
    assert error is not None
    raise error


async def _read_line(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < REQUEST_LIMIT:
        chunk = await loop.sock_recv(conn, REQUEST_LIMIT)
        if not chunk:
            break
        data += chunk
    return data


async def _answer(conn: socket.socket, token: str) -> None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            port = parse_request(await _read_line(loop, conn), token)
        target = await connect_loopback(port)
    except (ValueError, OSError, TimeoutError) as exc:
        message = str(exc) or type(exc).__name__
        with contextlib.suppress(OSError):
            await loop.sock_sendall(conn, f"error {message}\n".encode()[:REQUEST_LIMIT])
        return
    try:
        # A few bytes on an idle Unix socket never block; sendmsg carries the descriptor.
        socket.send_fds(conn, [b"ok\n"], [target.fileno()])
    except OSError as exc:
        log.warning("could not hand over a connection: %s", exc)
    finally:
        target.close()


async def serve_connect(listener: socket.socket, token: str) -> None:
    """Serve the connect service on `listener` (a listening Unix socket) until cancelled."""
    loop = asyncio.get_running_loop()
    listener.setblocking(False)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(conn: socket.socket) -> None:
        with conn:
            await _answer(conn, token)

    try:
        while True:
            conn, _ = await loop.sock_accept(listener)
            conn.setblocking(False)
            task = loop.create_task(handle(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
