"""Named web servers the agent starts on demand: Jupyter, JupyterLab, code-server.

The HTTP side is in `cocalc_k8s.agent.servers`.

``POST /servers/{name}`` with ``{"base_url": "/{project_id}/port/jupyter/"}`` starts the
server (once; later calls find it running) on a free port of the agent's own address,
with the base URL the hub will serve it under; it answers ``{"port": N, "token": T}`` when
the port accepts connections.

Credentials: each server gets a secret of its own, `token` (new at every start), which it
demands of every request; the hub's proxy, which alone learns it, supplies it on every
request it forwards (see `cocalc_k8s.core.server_credentials`, both ends of the
mechanism). It reaches the server in its environment, never in its arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cocalc_k8s.agent.environment import child_environment
from cocalc_k8s.core.errors import NotFound, Unavailable
from cocalc_k8s.core.server_credentials import NAMES, server_environment

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0
START_ATTEMPTS = 3


def command(name: str, *, host: str, port: int, base_url: str) -> list[str]:
    """The command line of a named server (pure); its token goes in `environment`."""
    if name in ("jupyter", "jupyterlab"):
        jupyter = shutil.which("jupyter")
        program = [jupyter] if jupyter else [sys.executable, "-m", "jupyter"]
        return [
            *program,
            "lab" if name == "jupyterlab" else "server",
            "--no-browser",
            f"--ServerApp.ip={host}",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.base_url={base_url}",
            "--ServerApp.password=",
            "--ServerApp.allow_remote_access=True",
            # Cross-site requests never carry the content origin's SameSite cookie, and the
            # proxy refuses requests from other projects' pages: Jupyter's own XSRF check
            # would only make every API client fetch a token first.
            "--ServerApp.disable_check_xsrf=True",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ]
    code = shutil.which("code-server")
    if code is None:
        raise NotFound("code-server is not installed in this project")
    # The password is the hashed one of its environment (HASHED_PASSWORD), as its cookie.
    return [code, "--bind-addr", f"{host}:{port}", "--auth", "password", "--disable-telemetry"]


@dataclass
class _Server:
    process: asyncio.subprocess.Process
    port: int
    token: str = field(repr=False)


class ServerRegistry:
    def __init__(self, home: Path, host: str) -> None:
        self.home = home
        self.host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        self.bind = host
        self._servers: dict[str, _Server] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    async def ensure(self, name: str, base_url: str) -> tuple[int, str]:
        """(port, token) of the named server, started if it does not run."""
        if name not in NAMES:
            raise NotFound(f"no named server {name!r}; known: {', '.join(NAMES)}")
        lock = self._starting.setdefault(name, asyncio.Lock())
        async with lock:
            server = self._servers.get(name)
            if server is not None and server.process.returncode is None:
                return server.port, server.token
            for attempt in range(START_ATTEMPTS):
                try:
                    return await self._start(name, base_url)
                except Unavailable:
                    # The free port may have been taken before the server bound it.
                    if attempt == START_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

    async def _start(self, name: str, base_url: str) -> tuple[int, str]:
        port = _free_port(self.host)
        token = secrets.token_urlsafe(32)
        argv = command(name, host=self.bind or self.host, port=port, base_url=base_url)
        log_path = self.home / f".cocalc-{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115, ASYNC230
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.home,
                env={
                    **child_environment(self.home, term="dumb"),
                    **server_environment(name, token),
                },
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise NotFound(f"{name} is not installed in this project") from None
        except OSError as exc:  # e.g. EAGAIN from fork under load: worth another try
            logger.warning("starting %s failed: %s", name, exc)
            raise Unavailable(f"{name} could not be started: {exc.strerror or exc}") from None
        finally:
            log.close()
        self._servers[name] = _Server(process, port, token)
        try:
            await _wait_for_port(self.host, port, process)
        except Unavailable as exc:
            raise Unavailable(f"{exc.message}; see ~/{log_path.name}") from None
        return port, token

    async def stop_all(self) -> None:
        for server in self._servers.values():
            if server.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGTERM)
        for server in self._servers.values():
            try:
                await asyncio.wait_for(server.process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGKILL)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _wait_for_port(host: str, port: int, process: asyncio.subprocess.Process) -> None:
    delay = 0.02
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            if process.returncode is not None:
                raise Unavailable(f"the server exited at start (code {process.returncode})")
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.5)
                continue
            writer.close()
            return
