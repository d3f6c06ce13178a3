"""The local backend: each project is a project agent in a bubblewrap sandbox of its own
(`cocalc_k8s.backends.sandbox`), a child process of the hub.

The sandbox has its own mount, PID, IPC, UTS and network namespaces: the project sees its
home, a read-only system, the interpreter and the package, and nothing of the hub's data
directory or of other projects; its loopback is its own. The agent serves on Unix sockets
the hub creates in a private runtime directory and hands over as descriptors (the paths
are nowhere in the sandbox, so nothing inside can replace them): one for the agent's API,
one for its connect service, through which the proxy reaches the project's ports
(`cocalc_k8s.backends.agent_connect`). With network allowed by the quota, `slirp4netns`
gives the namespace internet access (`cocalc_k8s.backends.network`).

Each agent gets a whitelisted environment (no hub secret, no database URL), a fresh
secret token on stdin (never in argv or the environment), coarse resource limits, and dies
with the hub (PR_SET_PDEATHSIG, and bubblewrap's --die-with-parent): local projects never
outlive it, so after a restart every project the database calls running is known to be
stopped. Stopping a project ends its sandbox's PID 1, and with it every process of the
project, daemons included.

Where bubblewrap cannot run, agents run unsandboxed (the hub then refuses multi-user
operation unless told the users are trusted): as their own uid when the hub is root,
sharing the machine's loopback, where `serves_port` checks who listens.
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
import shutil
import signal
import socket
import sys
import tempfile
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
from cocalc_k8s.backends.etc_view import EtcView
from cocalc_k8s.backends.network import NetworkError, start_network
from cocalc_k8s.backends.ports import listener_pids, listener_uids, tree_pids
from cocalc_k8s.backends.sandbox import (
    SandboxSpec,
    bwrap_command,
    etc_files,
    python_paths,
    sandbox_available,
    system_layout,
)
from cocalc_k8s.backends.seccomp import no_user_namespaces
from cocalc_k8s.core.projectfs import give_home
from cocalc_k8s.core.quotas import Quota

log = logging.getLogger(__name__)

START_TIMEOUT = 20.0
# bubblewrap now and then fails to give a new network namespace its loopback (the kernel
# answers RTM_NEWADDR with ECHILD; seen in about one start in 15 on a loaded machine, up to
# twice in a row, while other namespaces are being torn down): such a start is tried again
# after a short pause.
TRANSIENT_BWRAP_FAILURE = "bwrap: loopback:"
SPAWN_ATTEMPTS = 5
SPAWN_RETRY_PAUSE = 0.05
PORT_CHECK_TTL = 5.0
STOP_GRACE = 5.0
_PR_SET_PDEATHSIG = 1
_ENV_WHITELIST = ("PATH", "LANG", "LC_ALL", "TZ")


class _SandboxSetupFailed(BackendError):
    """bubblewrap could not make the sandbox, for a reason that may pass (see
    `TRANSIENT_BWRAP_FAILURE`)."""


@dataclass
class _Agent:
    process: asyncio.subprocess.Process
    uid: int | None = None
    address: AgentAddress | None = None
    stopping: bool = False
    sandbox_pid: int | None = None
    """The sandbox's PID 1 (as the host sees it): ending it ends the whole project."""
    runtime: Path | None = None
    network: asyncio.subprocess.Process | None = field(default=None, repr=False)
    network_start: asyncio.Task[asyncio.subprocess.Process | None] | None = field(
        default=None, repr=False
    )
    """The network helper while it is being made: whatever ends the agent (a failed or
    cancelled start included) collects and ends it too."""
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    drainer: asyncio.Task[None] | None = field(default=None, repr=False)


def agent_environment(home: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_WHITELIST if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update(HOME=str(home), SHELL="/bin/bash", TERM="xterm-256color")
    return env


def _child_setup(quota: Quota, uid: int | None) -> None:  # pragma: no cover - in the child
    """In the child: its own user (if any: unsandboxed; a sandbox drops to it inside),
    coarse limits, lower priority, and death with the hub. The user is switched here rather
    than by `user=` (which uvloop lacks), and before PR_SET_PDEATHSIG, which a change of
    user would clear."""
    # Address space is a coarse stand-in for memory (cgroups are for Kubernetes): generous,
    # since runtimes reserve far more virtual memory than they use.
    limit = max(quota.memory_mb * 4, 2048) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # No one file may outgrow the disk quota: the kernel refuses it (EFBIG) even between the
    # hub's periodic checks of the whole home (services.disk_quota).
    fsize = quota.disk_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
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


def prepare_home(home: Path, uid: int | None, *, sandboxed: bool = True) -> None:
    """The home exists, mode 0700; with a uid of its own it belongs to that uid (everything
    in it, the first time). A sandbox binds the home in, so nothing above it changes;
    unsandboxed, the directories above it must be traversable by the project's uid, and
    each mode changed for that is logged."""
    if not home.parent.exists():
        home.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.mkdir(mode=0o700, exist_ok=True)
    if uid is None:
        return
    if not sandboxed:
        # the projects' root: no listing of project ids
        _chmod_logged(home.parent, 0o711, "unsandboxed projects")
        for parent in home.parent.parents:
            mode = parent.stat().st_mode & 0o7777
            if mode & 0o001 == 0:
                _chmod_logged(parent, mode | 0o001, "unsandboxed projects")
    if home.stat().st_uid != uid:
        give_home(home, uid, uid)
    _chmod_logged(home, 0o700, "a project's home")


def _chmod_logged(path: Path, mode: int, why: str) -> None:
    old = path.stat().st_mode & 0o7777
    if old != mode:
        log.warning("changing the mode of %s from %o to %o (%s)", path, old, mode, why)
        path.chmod(mode)


class LocalBackend(ProjectBackend):
    """Agents as child processes, each in its sandbox. When the hub runs as root, each
    project runs as a uid of its own (`wants_uid`) and its home belongs to it.

    `sandbox`: True to require the sandbox, False to run agents unsandboxed (trusted users
    only), None to use it when bubblewrap can run here (probed at the first start)."""

    def __init__(
        self, *, log_dir: Path, python: str = sys.executable, sandbox: bool | None = None
    ) -> None:
        super().__init__()
        self.wants_uid = os.geteuid() == 0
        self.log_dir = log_dir
        self.python = python
        self.sandbox = sandbox
        self._runtime: Path | None = None
        self._etc_view: EtcView | None = None
        self._agents: dict[uuid.UUID, _Agent] = {}
        self._port_checks: dict[tuple[uuid.UUID, int], tuple[float, bool]] = {}
        self._health = HealthProbe()

    async def sandboxed(self) -> bool:
        """Whether projects run sandboxed (the first call may probe bubblewrap)."""
        if self.sandbox is None:
            reason = await asyncio.to_thread(sandbox_available)
            if reason is not None:
                log.warning("projects run without a sandbox: %s", reason)
            self.sandbox = reason is None
        return self.sandbox

    async def serves_port(self, project_id: uuid.UUID, port: int) -> bool:
        """A sandboxed project's loopback is its own: whatever listens there is the
        project's. Unsandboxed, all projects share this machine's loopback: a port is the
        project's only if what listens there runs as the project's user (or, when the hub
        is not root and projects share its user, is a process of the project's agent).
        Answers are cached briefly: this runs for every proxied request."""
        agent = self._agents.get(project_id)
        if agent is None:
            return False
        if agent.sandbox_pid is not None:
            return True
        key = (project_id, port)
        cached = self._port_checks.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        verdict, listening = await asyncio.to_thread(_serves, agent, port)
        if listening:  # "nobody listens" may change any moment: never cached
            if len(self._port_checks) > 10_000:
                self._port_checks.clear()
            self._port_checks[key] = (now + PORT_CHECK_TTL, verdict)
        return verdict

    def address(self, project_id: uuid.UUID) -> AgentAddress | None:
        agent = self._agents.get(project_id)
        return agent.address if agent and not agent.stopping else None

    def sandbox_pid(self, project_id: uuid.UUID) -> int | None:
        """The host pid of the project's sandbox PID 1 (None: not running, or unsandboxed)."""
        agent = self._agents.get(project_id)
        return agent.sandbox_pid if agent else None

    async def running(self) -> set[uuid.UUID]:
        return {pid for pid, agent in self._agents.items() if agent.address is not None}

    async def start(self, spec: ProjectSpec, progress: Progress) -> AgentAddress:
        existing = self.address(spec.project_id)
        if existing is not None:
            return existing
        if self.wants_uid and spec.uid is None:
            # As root, a project without a uid of its own would run as root.
            raise BackendError("a project of a hub running as root needs a uid of its own")
        sandboxed = await self.sandboxed()
        progress("Preparing the home directory", 10)
        await asyncio.to_thread(prepare_home, spec.home, spec.uid, sandboxed=sandboxed)
        for attempt in range(1, SPAWN_ATTEMPTS + 1):
            try:
                address = await self._start_agent(spec, progress, sandboxed=sandboxed)
            except _SandboxSetupFailed as exc:
                if attempt == SPAWN_ATTEMPTS:
                    raise BackendError(str(exc)) from None
                log.warning("project %s: %s; trying again", spec.project_id, exc)
                await asyncio.sleep(SPAWN_RETRY_PAUSE * attempt)
            else:
                progress("Running", 100)
                return address
        raise AssertionError("unreachable")

    async def _start_agent(
        self, spec: ProjectSpec, progress: Progress, *, sandboxed: bool
    ) -> AgentAddress:
        """One attempt: the agent, in its sandbox, answering (everything of it ended if not)."""
        progress("Starting the project's environment", 30)
        token = secrets.token_urlsafe(32)
        try:
            agent = await self._spawn(spec, token, sandboxed=sandboxed)
        except OSError as exc:
            raise BackendError(f"the project could not be started: {exc}") from None
        self._agents[spec.project_id] = agent
        network: asyncio.Task[asyncio.subprocess.Process | None] | None = None
        if sandboxed and spec.quota.network and agent.sandbox_pid is not None:
            # Made while the agent starts (no code of the project runs before start
            # returns): off the critical path of a start.
            progress("Connecting the project to the internet", 40)
            network = asyncio.create_task(self._network(spec, agent.sandbox_pid))
            agent.network_start = network
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self._read_ready(agent, spec.project_id)
                assert agent.runtime is not None
                agent.address = AgentAddress(
                    "",
                    0,
                    token,
                    unix=str(agent.runtime / "api"),
                    connect=str(agent.runtime / "connect"),
                )
                if network is not None:
                    agent.network = await network
                progress("Waiting for the project to answer", 70)
                await self._health.wait(agent.address)
        except (TimeoutError, BackendError, OSError) as exc:
            await self.stop(spec.project_id)
            if isinstance(exc, TimeoutError):
                raise BackendError(
                    f"the project did not start within {START_TIMEOUT:.0f} s"
                ) from None
            if isinstance(exc, _SandboxSetupFailed):
                raise
            raise BackendError(str(exc) or "the project did not start") from None
        agent.watcher = asyncio.create_task(self._watch(spec.project_id, agent))
        return agent.address

    async def _network(
        self, spec: ProjectSpec, sandbox_pid: int
    ) -> asyncio.subprocess.Process | None:
        """The project's network helper, or None: the project then has its loopback only
        (never a network without its restrictions)."""
        try:
            return await start_network(sandbox_pid)
        except (NetworkError, OSError) as exc:
            log.warning("project %s: %s; it has its loopback only", spec.project_id, exc)
            return None

    def _current_etc(self) -> Path:
        """The copy of /etc sandboxes bind, kept with the runtime directory (blocking)."""
        assert self._runtime is not None
        if self._etc_view is None or self._etc_view.root != self._runtime:
            self._etc_view = EtcView(self._runtime)
        return self._etc_view.current()

    def _runtime_dir(self, project_id: uuid.UUID) -> Path:
        """A directory of the hub's own (0700, under the system's temporary directory: Unix
        socket paths are short) for the project's sockets and generated files."""
        if self._runtime is None or not self._runtime.is_dir():
            self._runtime = Path(tempfile.mkdtemp(prefix="cocalc-agents-"))
        path = self._runtime / project_id.hex
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o700)
        return path

    def _prepare_runtime(
        self, spec: ProjectSpec, sandboxed: bool, info_fd: int
    ) -> tuple[Path, list[socket.socket], list[str], int | None]:
        """The runtime directory, the agent's two listening sockets, its command line and
        the descriptor of its seccomp filter, if any (the caller closes it)."""
        runtime = self._runtime_dir(spec.project_id)
        sockets = [_listen_unix(runtime / "api"), _listen_unix(runtime / "connect")]
        api, connect = (sock.fileno() for sock in sockets)
        argv = [
            self.python, "-m", "cocalc_k8s.agent", "--home", str(spec.home),
            "--listen-fd", str(api), "--connect-fd", str(connect),
        ]  # fmt: skip
        if not sandboxed:
            return runtime, sockets, argv, None
        etc = runtime / "etc"
        etc.mkdir(mode=0o755)
        hostname = f"project-{spec.project_id.hex[:8]}"
        uid = spec.uid if spec.uid is not None else os.getuid()
        for name, text in etc_files(uid=uid, home=spec.home, hostname=hostname).items():
            (etc / name).write_text(text)
            (etc / name).chmod(0o644)
        # As root there is no user namespace for --disable-userns: a filter instead.
        seccomp_fd = _seccomp_fd() if spec.uid is not None else None
        sandbox = SandboxSpec(
            home=spec.home,
            uid=spec.uid,
            etc_dir=etc,
            read_only=python_paths(self.python),
            etc_view=self._current_etc(),
            tmp_mb=max(64, spec.quota.memory_mb // 2),
            hostname=hostname,
            info_fd=info_fd,
            seccomp_fd=seccomp_fd,
        )
        return runtime, sockets, bwrap_command(sandbox, argv, is_link=system_layout()), seccomp_fd

    async def _spawn(self, spec: ProjectSpec, token: str, *, sandboxed: bool) -> _Agent:
        await asyncio.to_thread(self.log_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.project_id}.log"
        log_fd = await asyncio.to_thread(_open_log, log_path)
        info_read, info_write = os.pipe() if sandboxed else (-1, -1)
        sockets: list[socket.socket] = []
        seccomp_fd: int | None = None
        try:
            runtime, sockets, argv, seccomp_fd = await asyncio.to_thread(
                self._prepare_runtime, spec, sandboxed, info_write
            )
            fds = [sock.fileno() for sock in sockets] + ([info_write] if sandboxed else [])
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_fd,
                cwd=spec.home,
                env=agent_environment(spec.home),
                start_new_session=True,
                pass_fds=fds + ([seccomp_fd] if seccomp_fd is not None else []),
                preexec_fn=lambda: _child_setup(spec.quota, None if sandboxed else spec.uid),
            )
        except BaseException:
            if sandboxed:
                os.close(info_read)
            raise
        finally:
            # The agent has its copies now; the hub connects to the sockets by path.
            for sock in sockets:
                sock.close()
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            os.close(log_fd)
            if sandboxed:
                os.close(info_write)
        agent = _Agent(process=process, uid=spec.uid, runtime=runtime)
        if sandboxed:
            agent.sandbox_pid = await _read_info(info_read)
        assert process.stdin is not None
        # An agent that dies at once closes its stdin: reading its stdout tells why.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(token.encode() + b"\n")
            await process.stdin.drain()
        process.stdin.close()
        return agent

    async def _read_ready(self, agent: _Agent, project_id: uuid.UUID) -> None:
        """Until the agent's first line (it serves); BackendError with the log's last
        line if it exits first."""
        assert agent.process.stdout is not None
        line = await agent.process.stdout.readline()
        if not line:
            code = await agent.process.wait()
            log_path = self.log_dir / f"{project_id}.log"
            last = await asyncio.to_thread(_last_line, log_path)
            failure = BackendError
            if last.startswith(TRANSIENT_BWRAP_FAILURE):
                failure = _SandboxSetupFailed
            raise failure(
                f"the project's agent exited at start (code {code})" + (f": {last}" if last else "")
            )
        try:
            json.loads(line)["port"]
        except (ValueError, KeyError, TypeError):
            raise BackendError("the project's agent did not say it serves") from None
        # Keep draining stdout so that a chatty agent never blocks on a full pipe.
        agent.drainer = asyncio.create_task(_drain(agent.process.stdout))

    async def _watch(self, project_id: uuid.UUID, agent: _Agent) -> None:
        code = await agent.process.wait()
        await self._end(agent)
        if self._agents.get(project_id) is agent:
            del self._agents[project_id]
        if not agent.stopping:
            reason = f"the project's agent exited unexpectedly (code {code})"
            if code == -signal.SIGKILL:
                reason = "the project was killed (out of memory?)"
            log.warning("project %s: %s", project_id, reason)
            self._exited(project_id, reason)

    async def stop(self, project_id: uuid.UUID) -> None:
        """SIGTERM to the agent (it ends its terminals, commands and servers), then the
        sandbox goes, with whatever still runs in it. Returns when nothing of the project
        runs."""
        agent = self._agents.get(project_id)
        if agent is None:
            return
        agent.stopping = True
        await _terminate(agent)
        await self._end(agent)
        if self._agents.get(project_id) is agent:
            del self._agents[project_id]

    async def _end(self, agent: _Agent) -> None:
        """Everything of a project whose agent has exited: the sandbox's PID 1 (the kernel
        then kills every process of its PID namespace), the network helper, the sockets."""
        if agent.sandbox_pid is not None:
            await asyncio.to_thread(_kill_and_wait, agent.sandbox_pid)
        if agent.network is None and agent.network_start is not None:
            agent.network = await _outcome(agent.network_start)
        if agent.network is not None and agent.network.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                agent.network.kill()
            await agent.network.wait()
        if agent.runtime is not None:
            await asyncio.to_thread(shutil.rmtree, agent.runtime, True)

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(pid) for pid in list(self._agents)))
        await self._health.close()
        if self._runtime is not None:
            await asyncio.to_thread(shutil.rmtree, self._runtime, True)


async def _outcome(
    task: asyncio.Task[asyncio.subprocess.Process | None],
) -> asyncio.subprocess.Process | None:
    """The network helper a cancelled start made, if it got that far (to be ended)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        return await task
    return None


def _seccomp_fd() -> int | None:
    """A descriptor holding the sandbox's seccomp filter, at its start (None: no filter for
    this architecture)."""
    program = no_user_namespaces()
    if program is None:
        return None
    fd = os.memfd_create("cocalc-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _listen_unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def _open_log(path: Path) -> int:
    """The project's agent log, for appending: 0600, outside the sandbox."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)  # logs of earlier versions were 0644
    return fd


async def _read_info(fd: int) -> int | None:
    """The sandbox's PID 1, from bubblewrap's --info-fd (None if it wrote none)."""

    def read() -> bytes:
        with os.fdopen(fd, "rb") as pipe:
            return pipe.read()

    data = await asyncio.to_thread(read)
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _kill_and_wait(pid: int, seconds: float = STOP_GRACE) -> None:
    """SIGKILL the sandbox's PID 1 and wait until it is gone (it is not our child: its
    parent, bubblewrap, reaps it)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                state = stat.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            return
        if state in (b"Z", b"X"):
            return
        time.sleep(0.005)  # a poll interval, not synchronisation


async def _terminate(agent: _Agent) -> None:
    """SIGTERM to the agent, SIGKILL to everything after a grace period. Sandboxed, the
    agent is the only child of the sandbox's PID 1; unsandboxed, the process group."""
    process = agent.process
    if process.returncode is not None:
        return
    target = _sandboxed_agent(agent.sandbox_pid) if agent.sandbox_pid is not None else None
    with contextlib.suppress(ProcessLookupError):
        if target is not None:
            os.kill(target, signal.SIGTERM)
        else:
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


def _sandboxed_agent(sandbox_pid: int) -> int | None:
    """The agent: the first child of the sandbox's PID 1."""
    try:
        with open(f"/proc/{sandbox_pid}/task/{sandbox_pid}/children") as children:
            pids = children.read().split()
    except OSError:
        return None
    return int(pids[0]) if pids else None


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
