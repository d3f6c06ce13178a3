"""``python -m cocalc_k8s.agent``: read settings and the token, listen, print the port, serve
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
from cocalc_k8s.agent.settings import AgentSettings, settings_from_args

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


async def serve(settings: AgentSettings) -> None:
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=5)
    await runner.setup()
    sock = listening_socket(settings.host, settings.port)
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    log.info("agent serving %s on %s:%d", settings.home, *sock.getsockname()[:2])
    try:
        await stop.wait()
    finally:
        log.info("agent stopping")
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s agent %(levelname)s %(message)s"
    )
    settings = settings_from_args(argv)
    make_non_dumpable()
    asyncio.run(serve(settings))
