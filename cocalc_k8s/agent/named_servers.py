"""Named web servers the agent starts on demand: JupyterLab (with the Notebook 7 interface
and real-time collaboration in the same server) and code-server.

The HTTP side is in `cocalc_k8s.agent.servers`.

``POST /servers/{name}`` with ``{"base_url": "/{project_id}/port/jupyterlab/",
"identity_key": K, "project_id": P}`` starts the server (once; later calls find it
running) on a free port of the agent's own address, with the base URL the hub will serve
it under; it answers ``{"port": N, "token": T}`` when the port accepts connections, or an
error whose message ends with the last lines of the server's log. ``GET /servers`` says
which servers this project can run (`available`).

Credentials: each server gets a secret of its own, `token` (new at every start), which it
demands of every request; the hub's proxy, which alone learns it, supplies it on every
request it forwards (see `cocalc_k8s.core.server_credentials`, both ends of the
mechanism). It reaches the server in its environment, never in its arguments.

Beside it the proxy adds who asks (``X-CoCalc-Identity``), signed with a key only the hub
holds; Jupyter verifies it with the public key `identity_key` through
``cocalc_jupyter.identity`` (project-env/, installed with Jupyter), so each collaborator
is a user of their own in Jupyter (names and colours in real-time collaboration) and a
process of the project, which can read the token, still cannot pose as anyone.
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
LOG_TAIL_LINES = 12
# "jupyter" (the Notebook 7 interface) is served by JupyterLab's server: one server per
# project, so both interfaces share its kernels and its collaborative documents.
PROGRAMS = {"jupyter": "jupyter-notebook", "jupyterlab": "jupyter-lab", "code": "code-server"}
INSTALL_HINTS = {
    "jupyter": "the Jupyter Notebook interface (pip package notebook) is not installed",
    "jupyterlab": "JupyterLab (pip package jupyterlab) is not installed",
    "code": "code-server (npm package code-server) is not installed",
}
IDENTITY_PROVIDER = "cocalc_jupyter.identity.HubIdentityProvider"


def find_program(program: str, path: str | None = None) -> str | None:
    """`program` on `path` (the project's PATH), else beside the agent's interpreter (the
    one-machine install keeps Jupyter in the hub's virtualenv, not on PATH)."""
    found = shutil.which(program, path=path)
    if found is None:
        beside = os.path.join(os.path.dirname(sys.executable), program)
        found = beside if os.access(beside, os.X_OK) else None
    return found


def available(path: str | None = None) -> list[dict[str, object]]:
    """Which named servers this project can run, and why not where it cannot."""
    lab = find_program(PROGRAMS["jupyterlab"], path)
    report: list[dict[str, object]] = []
    for name in NAMES:
        missing = find_program(PROGRAMS[name], path) is None or lab is None
        reason = INSTALL_HINTS["jupyterlab" if lab is None else name] if missing else None
        report.append({"name": name, "available": not missing, "reason": reason})
    return report


def command(
    name: str, *, host: str, port: int, base_url: str, identity: bool, path: str | None = None
) -> list[str]:
    """The command line of a named server (pure but for finding the program); its token
    and identity key go in `environment`."""
    if name in ("jupyter", "jupyterlab"):
        lab = find_program(PROGRAMS["jupyterlab"], path)
        if lab is None:
            raise NotFound(INSTALL_HINTS["jupyterlab"] + " in this project")
        return [
            lab,
            "--no-browser",
            f"--ServerApp.ip={host}",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.base_url={base_url}",
            "--ServerApp.allow_remote_access=True",
            # Cross-site requests never carry the content origin's SameSite cookie, and the
            # proxy refuses requests from other projects' pages: Jupyter's own XSRF check
            # would only make every API client fetch a token first.
            "--ServerApp.disable_check_xsrf=True",
            *([f"--ServerApp.identity_provider_class={IDENTITY_PROVIDER}"] if identity else []),
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ]
    code = find_program(PROGRAMS["code"], path)
    if code is None:
        raise NotFound(INSTALL_HINTS["code"] + " in this project")
    # The password is the hashed one of its environment (HASHED_PASSWORD), as its cookie.
    return [code, "--bind-addr", f"{host}:{port}", "--auth", "password", "--disable-telemetry"]


def environment(
    name: str, token: str, *, identity_key: str | None = None, project_id: str | None = None
) -> dict[str, str]:
    """What a named server's environment adds (pure): its credential, and for Jupyter
    what it checks identities with."""
    env = server_environment(name, token)
    if name in ("jupyter", "jupyterlab") and identity_key and project_id:
        env.update(COCALC_IDENTITY_KEY=identity_key, COCALC_PROJECT_ID=project_id)
    return env


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a server's log (blocking: a small read)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class _PortTaken(Unavailable):
    """The server exited because another process took its port first."""


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

    async def ensure(
        self,
        name: str,
        base_url: str,
        *,
        identity_key: str | None = None,
        project_id: str | None = None,
    ) -> tuple[int, str]:
        """(port, token) of the named server, started if it does not run."""
        if name not in NAMES:
            raise NotFound(f"no named server {name!r}; known: {', '.join(NAMES)}")
        server_name = "jupyterlab" if name == "jupyter" else name
        lock = self._starting.setdefault(server_name, asyncio.Lock())
        async with lock:
            server = self._servers.get(server_name)
            if server is not None and server.process.returncode is None:
                return server.port, server.token
            for attempt in range(START_ATTEMPTS):
                try:
                    return await self._start(
                        server_name, base_url, identity_key=identity_key, project_id=project_id
                    )
                except _PortTaken as exc:
                    # The free port was taken before the server bound it: another port.
                    if attempt == START_ATTEMPTS - 1:
                        raise Unavailable(exc.message) from None
            raise AssertionError("unreachable")

    async def _start(
        self, name: str, base_url: str, *, identity_key: str | None, project_id: str | None
    ) -> tuple[int, str]:
        port = _free_port(self.host)
        token = secrets.token_urlsafe(32)
        env = child_environment(self.home, term="dumb")
        argv = command(
            name,
            host=self.bind or self.host,
            port=port,
            base_url=base_url,
            identity=bool(identity_key and project_id),
            path=env.get("PATH"),
        )
        env.update(environment(name, token, identity_key=identity_key, project_id=project_id))
        log_path = self.home / f".cocalc-{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115, ASYNC230
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.home,
                env=env,
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
            tail = await asyncio.to_thread(log_tail, log_path)
            message = f"{exc.message}; see ~/{log_path.name}"
            message = f"{message}, which ends:\n{tail}" if tail else message
            taken = "already in use" in tail.rsplit("\n", 3)[-1] if tail else False
            raise (_PortTaken if taken else Unavailable)(message) from None
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
