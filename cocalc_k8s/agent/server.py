"""``python -m cocalc_k8s.agent``: read settings and the token, listen (on host:port, or on a
socket handed over with ``--listen-fd``; plus the connect service on ``--connect-fd``),
print the port (0 when not TCP), serve
until SIGTERM or SIGINT, then stop terminals and commands and exit 0.

The process also makes itself non-dumpable (``PR_SET_DUMPABLE`` 0), so processes of the
same uid in the project cannot ptrace it or read its memory for the token.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import signal
import socket
import sys
from collections.abc import Sequence

from aiohttp import web

from cocalc_k8s.agent.app import create_app
from cocalc_k8s.agent.connect import serve_connect
from cocalc_k8s.agent.settings import AgentSettings, settings_from_args
from cocalc_k8s.core.tasks import cancel

log = logging.getLogger("cocalc_k8s.agent")
PR_SET_DUMPABLE = 4


def make_non_dumpable() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("could not make the agent non-dumpable")


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def inherited_socket(fd: int) -> socket.socket:
    """A listening socket handed over by whoever started the agent (family from the fd)."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


async def serve(settings: AgentSettings) -> None:
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=5)
    await runner.setup()
    if settings.listen_fd is not None:
        sock = inherited_socket(settings.listen_fd)
    else:
        sock = listening_socket(settings.host, settings.port)
    await web.SockSite(runner, sock).start()
    connector = None
    if settings.connect_fd is not None:
        listener = inherited_socket(settings.connect_fd)
        connector = asyncio.create_task(serve_connect(listener, settings.token))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = sock.getsockname()
    port = where[1] if isinstance(where, tuple) else 0  # 0: not TCP (a Unix socket)
    print(json.dumps({"port": port}), flush=True)
    log.info("agent serving %s on %s", settings.home, where or "an inherited socket")
    try:
        await stop.wait()
    finally:
        log.info("agent stopping")
        if connector is not None:
            await cancel(connector)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s agent %(levelname)s %(message)s"
    )
    settings = settings_from_args(argv)
    make_non_dumpable()
    asyncio.run(serve(settings))
