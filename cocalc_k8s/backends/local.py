"""The local backend: each project is a child process of the hub (the project agent).

For one machine and trusted users, like cocalc-docker. Each agent runs in its own session
and process group with HOME set to the project's directory, a whitelisted environment (no
hub secret, no database URL), a fresh secret token handed over on stdin (never in argv or
the environment), and coarse resource limits. Agents are asked to die with the hub
(PR_SET_PDEATHSIG): local projects never outlive it, so after a restart every project the
database calls running is known to be stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import resource
import secrets
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cocalc_k8s.backends.agent_client import HealthProbe
from cocalc_k8s.backends.base import (
    AgentAddress,
    BackendError,
    Progress,
    ProjectBackend,
    ProjectSpec,
)
from cocalc_k8s.backends.ports import listener_pids, listener_uids, tree_pids
from cocalc_k8s.core.projectfs import give_home
from cocalc_k8s.core.quotas import Quota

log = logging.getLogger(__name__)

START_TIMEOUT = 20.0
PORT_CHECK_TTL = 5.0
STOP_GRACE = 5.0
_PR_SET_PDEATHSIG = 1
_ENV_WHITELIST = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass
class _Agent:
    process: asyncio.subprocess.Process
    uid: int | None = None
    address: AgentAddress | None = None
    stopping: bool = False
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    drainer: asyncio.Task[None] | None = field(default=None, repr=False)


def agent_environment(home: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_WHITELIST if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update(HOME=str(home), SHELL="/bin/bash", TERM="xterm-256color")
    return env


def _child_setup(quota: Quota, uid: int | None) -> None:  # pragma: no cover - in the child
    """In the child: its own user (if any), coarse limits, lower priority, and death with
    the hub. The user is switched here rather than by `user=` (which uvloop lacks), and
    before PR_SET_PDEATHSIG, which a change of user would clear."""
    # Address space is a coarse stand-in for memory (cgroups are for Kubernetes): generous,
    # since runtimes reserve far more virtual memory than they use.
    limit = max(quota.memory_mb * 4, 2048) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.nice(5)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _serves(agent: _Agent, port: int) -> tuple[bool, bool]:
    """(the project's, anybody listening). Nobody listening is let through: the
    connection then fails with a clear 502."""
    if agent.uid is not None:
        uids = listener_uids(port)
        return (not uids or uids == {agent.uid}), bool(uids)
    pids = listener_pids(port)
    return (not pids or pids <= tree_pids(agent.process.pid)), bool(pids)


def prepare_home(home: Path, uid: int | None) -> None:
    """The home exists, mode 0700; with a uid of its own it belongs to that uid (everything
    in it, the first time), and the directories above it can be traversed but not listed."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if uid is None:
        return
    home.parent.chmod(0o711)  # the projects' root: no listing of other projects' ids
    for parent in home.parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)
    if home.stat().st_uid != uid:
        give_home(home, uid, uid)
    home.chmod(0o700)


class LocalBackend(ProjectBackend):
    """Agents as child processes. When the hub runs as root, each project runs as a uid
    of its own (`wants_uid`) and its home belongs to it: projects cannot read each other's
    files, or the hub's data directory."""

    def __init__(self, *, log_dir: Path, python: str = sys.executable) -> None:
        super().__init__()
        self.wants_uid = os.geteuid() == 0
        self.log_dir = log_dir
        self.python = python
        self._agents: dict[uuid.UUID, _Agent] = {}
        self._port_checks: dict[tuple[uuid.UUID, int], tuple[float, bool]] = {}
        self._health = HealthProbe()

    async def serves_port(self, project_id: uuid.UUID, port: int) -> bool:
        """All projects share this machine's loopback: a port is the project's only if
        what listens there runs as the project's user (or, when the hub is not root and
        projects share its user, is a process of the project's agent). Answers are
        cached briefly: this runs for every proxied request."""
        key = (project_id, port)
        cached = self._port_checks.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        agent = self._agents.get(project_id)
        if agent is None:
            return False
        verdict, listening = await asyncio.to_thread(_serves, agent, port)
        if listening:  # "nobody listens" may change any moment: never cached
            if len(self._port_checks) > 10_000:
                self._port_checks.clear()
            self._port_checks[key] = (now + PORT_CHECK_TTL, verdict)
        return verdict

    def address(self, project_id: uuid.UUID) -> AgentAddress | None:
        agent = self._agents.get(project_id)
        return agent.address if agent and not agent.stopping else None

    async def running(self) -> set[uuid.UUID]:
        return {pid for pid, agent in self._agents.items() if agent.address is not None}

    async def start(self, spec: ProjectSpec, progress: Progress) -> AgentAddress:
        existing = self.address(spec.project_id)
        if existing is not None:
            return existing
        progress("Preparing the home directory", 10)
        await asyncio.to_thread(prepare_home, spec.home, spec.uid)
        progress("Starting the project's environment", 30)
        token = secrets.token_urlsafe(32)
        agent = await self._spawn(spec, token)
        self._agents[spec.project_id] = agent
        try:
            async with asyncio.timeout(START_TIMEOUT):
                port = await self._read_port(agent, spec.project_id)
                agent.address = AgentAddress("127.0.0.1", port, token)
                progress("Waiting for the project to answer", 70)
                await self._health.wait(agent.address)
        except (TimeoutError, BackendError, OSError) as exc:
            await self.stop(spec.project_id)
            if isinstance(exc, TimeoutError):
                raise BackendError(
                    f"the project did not start within {START_TIMEOUT:.0f} s"
                ) from None
            raise BackendError(str(exc) or "the project did not start") from None
        agent.watcher = asyncio.create_task(self._watch(spec.project_id, agent))
        progress("Running", 100)
        return agent.address

    async def _spawn(self, spec: ProjectSpec, token: str) -> _Agent:
        await asyncio.to_thread(self.log_dir.mkdir, parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.project_id}.log"
        log_file = await asyncio.to_thread(open, log_path, "ab")
        try:
            process = await asyncio.create_subprocess_exec(
                self.python, "-m", "cocalc_k8s.agent",
                "--home", str(spec.home), "--host", "127.0.0.1", "--port", "0",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                cwd=spec.home,
                env=agent_environment(spec.home),
                start_new_session=True,
                preexec_fn=lambda: _child_setup(spec.quota, spec.uid),
            )  # fmt: skip
        finally:
            log_file.close()
        assert process.stdin is not None
        # An agent that dies at once closes its stdin: reading its stdout tells why.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(token.encode() + b"\n")
            await process.stdin.drain()
        process.stdin.close()
        return _Agent(process=process, uid=spec.uid)

    async def _read_port(self, agent: _Agent, project_id: uuid.UUID) -> int:
        assert agent.process.stdout is not None
        line = await agent.process.stdout.readline()
        if not line:
            code = await agent.process.wait()
            log_path = self.log_dir / f"{project_id}.log"
            last = await asyncio.to_thread(_last_line, log_path)
            raise BackendError(
                f"the project's agent exited at start (code {code})" + (f": {last}" if last else "")
            )
        try:
            port = int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError):
            raise BackendError("the project's agent did not report its port") from None
        # Keep draining stdout so that a chatty agent never blocks on a full pipe.
        agent.drainer = asyncio.create_task(_drain(agent.process.stdout))
        return port

    async def _watch(self, project_id: uuid.UUID, agent: _Agent) -> None:
        code = await agent.process.wait()
        if self._agents.get(project_id) is agent:
            del self._agents[project_id]
        if not agent.stopping:
            reason = f"the project's agent exited unexpectedly (code {code})"
            if code == -signal.SIGKILL:
                reason = "the project was killed (out of memory?)"
            log.warning("project %s: %s", project_id, reason)
            self._exited(project_id, reason)

    async def stop(self, project_id: uuid.UUID) -> None:
        agent = self._agents.get(project_id)
        if agent is None:
            return
        agent.stopping = True
        await _terminate_group(agent.process)
        if self._agents.get(project_id) is agent:
            del self._agents[project_id]

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(pid) for pid in list(self._agents)))
        await self._health.close()


async def _terminate_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the whole process group, SIGKILL after a grace period."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    # Anything the agent left behind in its group (background jobs) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def _last_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log (the reason an agent died), shortened."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
            lines = [x for x in log.read().decode("utf-8", "replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:limit] if lines else ""
