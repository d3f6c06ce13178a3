"""Local port forwarding (``ssh -L 8888:localhost:8888``) to ports inside the project only.

The destination must name the project's own loopback (``localhost``, ``127.0.0.1``,
``::1``); the port is reached the way the proxy reaches it (`proxy.upstream`'s two kinds):
through the agent's connect service into a sandboxed project's network namespace, or at
the pod's address. A port the backend says the project does not serve (on an unsandboxed
local hub, the hub's own ports and other projects') is refused, as in the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncssh

from cocalc_k8s.backends.agent_connect import open_port
from cocalc_k8s.backends.base import AgentAddress

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
CONNECT_TIMEOUT = 5.0
READ_SIZE = 1 << 16


def forwardable(dest_host: str, dest_port: int) -> bool:
    """Whether a forwarding destination names a port of the project itself (pure)."""
    return dest_host.lower().rstrip(".") in LOOPBACK_NAMES and 0 < dest_port < 65536


async def open_project_port(
    address: AgentAddress, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream to `port` inside the project at `address`."""
    async with asyncio.timeout(CONNECT_TIMEOUT):
        if address.connect:
            sock = await open_port(address.connect, address.token, port)
            return await asyncio.open_connection(sock=sock)
        return await asyncio.open_connection(address.host, port)


async def _pipe(
    reader: asyncssh.SSHReader[bytes] | asyncio.StreamReader,
    writer: asyncssh.SSHWriter[bytes] | asyncio.StreamWriter,
    touch: Callable[[], None],
) -> None:
    while data := await reader.read(READ_SIZE):
        touch()
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


async def splice(
    client: tuple[asyncssh.SSHReader[bytes], asyncssh.SSHWriter[bytes]],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    touch: Callable[[], None],
) -> None:
    """Copy both ways until both directions end (or either fails)."""
    (client_r, client_w), (up_r, up_w) = client, upstream
    tasks = [
        asyncio.create_task(_pipe(client_r, up_w, touch)),
        asyncio.create_task(_pipe(up_r, client_w, touch)),
    ]
    try:
        await asyncio.gather(*tasks)
    except (OSError, asyncssh.Error):
        pass
    finally:
        for task in tasks:
            task.cancel()
        up_w.close()
        client_w.close()
