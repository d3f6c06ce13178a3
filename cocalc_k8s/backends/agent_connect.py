"""The hub's side of the agent's connect service (`cocalc_k8s.agent.connect`): a TCP socket
connected to a port on a sandboxed project's own loopback, handed over by its agent.

The descriptor comes from inside the project, so it is checked before use: it must be a
connected stream socket of the Internet families (not a file, a pipe or a Unix socket).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket

CONNECT_TIMEOUT = 5.0
ANSWER_LIMIT = 512


async def open_port(path: str, token: str, port: int) -> socket.socket:
    """A non-blocking TCP socket connected to `port` inside the project whose connect
    service listens on `path`. OSError (ECONNREFUSED with the agent's reason) when
    nothing listens there or the agent refuses; TimeoutError when it does not answer."""
    loop = asyncio.get_running_loop()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.setblocking(False)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await loop.sock_connect(conn, path)
            await loop.sock_sendall(conn, f"{token} {port}\n".encode())
            message, fds = await _receive(loop, conn)
    finally:
        conn.close()
    if not message.startswith(b"ok") or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        reason = message.decode("utf-8", "replace").strip().removeprefix("error ")
        raise ConnectionRefusedError(errno.ECONNREFUSED, reason or "the agent refused")
    sock = socket.socket(fileno=fds[0])
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        sock.close()
        raise ConnectionRefusedError(errno.ECONNREFUSED, "the agent handed over no TCP socket")
    sock.setblocking(False)
    return sock


async def _receive(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the descriptors it carries (the event loop has no recvmsg)."""
    done: asyncio.Future[tuple[bytes, list[int]]] = loop.create_future()

    def readable() -> None:
        if done.done():
            return
        try:
            message, fds, _, _ = socket.recv_fds(conn, ANSWER_LIMIT, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            done.set_exception(exc)
        else:
            done.set_result((message, fds))

    loop.add_reader(conn.fileno(), readable)
    try:
        return await done
    finally:
        loop.remove_reader(conn.fileno())
