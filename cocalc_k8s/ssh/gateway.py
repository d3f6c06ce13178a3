"""The hub's SSH server (asyncssh): one login is one project.

Login: the user name is the project's id (or its first 8 hex digits while they are
unique); only public keys are accepted (never passwords or keyboard-interactive), and a
key opens the project when `SshKeyService.authorise` says so (an account key of a
collaborator, or a project key whose adder is still one). Failed keys count against the
client's address (`FailureWindow`); past the limit the address is refused until the
window slides. A successful login is written to the project's log and registered with
`LiveConnections` under its key (`Credential("ssh_key", id)`): deleting the key, banning
the account or removing the collaborator closes the whole connection at once.

Per connection: sessions (a pty shell, a command: `session.relay` to the agent's
streamed exec, starting a stopped project first), the SFTP subsystem (`sftp`, on the
home the hub has mounted), and local forwarding to the project's own ports (`forward`).
Remote forwarding, agent forwarding and X11 are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncssh

from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.core.errors import DomainError
from cocalc_k8s.core.identity import Credential
from cocalc_k8s.core.projectfs import ProjectFS
from cocalc_k8s.core.ratelimit import FailureWindow
from cocalc_k8s.services.activity import ActivityRecorder
from cocalc_k8s.services.disk_quota import DiskQuota
from cocalc_k8s.services.files import ProjectFiles
from cocalc_k8s.services.lifecycle import LifecycleManager
from cocalc_k8s.services.live_connections import LiveConnections
from cocalc_k8s.services.ssh_keys import KeyGrant, SshKeyService
from cocalc_k8s.ssh import forward, session
from cocalc_k8s.ssh.sftp import ProjectSFTPServer

log = logging.getLogger(__name__)

START_WAIT = 90.0  # a login waits this long for a stopped project to start
LOGIN_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class GatewayParts:
    """What the gateway uses of the hub."""

    ssh_keys: SshKeyService
    lifecycle: LifecycleManager
    agents: AgentClient
    files: ProjectFiles
    live: LiveConnections
    activity: ActivityRecorder
    disk_quota: DiskQuota
    failures: FailureWindow


class ProjectLogin(asyncssh.SSHServer):
    """One client connection: its login, and what it may open once logged in."""

    def __init__(self, parts: GatewayParts) -> None:
        self.parts = parts
        self.conn: asyncssh.SSHServerConnection | None = None
        self.address = "unknown"
        self.project_id: uuid.UUID | None = None
        self.grant: KeyGrant | None = None
        self.fs: ProjectFS | None = None
        self._last_try: KeyGrant | None = None
        self._authorised_at = 0.0
        self._unregister: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # asyncssh takes channel requests while `auth_completed` still awaits: they wait.
        self.ready = asyncio.Event()

    # -- connection ---------------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "unknown"

    def connection_lost(self, exc: Exception | None) -> None:
        if self._unregister is not None:
            self._unregister()
        for task in self._tasks:
            task.cancel()

    def track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def touch(self) -> None:
        if self.project_id is not None:
            self.parts.activity.touch(self.project_id)

    # -- authentication -------------------------------------------------------------

    async def begin_auth(self, username: str) -> bool:
        if self.parts.failures.retry_after(self.address):
            log.warning("ssh: refusing %s: too many failed logins", self.address)
            raise asyncssh.DisconnectError(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                "too many failed logins from this address; try again later",
            )
        self._authorised_at = time.monotonic()
        try:
            self.project_id = await self.parts.ssh_keys.project_for_login(username)
        except Exception:
            log.exception("ssh: could not look up the login %r of %s", username, self.address)
            raise
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Called for every key offered and again with its signature; the last call
        before `auth_completed` is the key that logged in (asyncssh checks the signature
        after this answers)."""
        self._last_try = None
        if self.project_id is None or self.parts.failures.retry_after(self.address):
            self.parts.failures.fail(self.address)
            return False
        try:
            grant = await self.parts.ssh_keys.authorise(self.project_id, key.get_fingerprint())
        except Exception:
            log.exception("ssh: could not check a key of %s", self.address)
            raise
        if grant is None:
            self.parts.failures.fail(self.address)
            return False
        self._last_try = grant
        return True

    async def auth_completed(self) -> None:
        grant, project_id = self._last_try, self.project_id
        assert grant is not None and project_id is not None and self.conn is not None
        self.grant = grant
        self._unregister = self.parts.live.register(
            "ssh",
            grant.account_id,
            Credential("ssh_key", str(grant.key_id)),
            project_id,
            self.conn.close,
            authorised_at=self._authorised_at,
        )
        try:
            self.fs = await self.parts.files.fs(project_id)
            self.ready.set()
            self.touch()
            log.info("ssh: %s logged in to project %s", self.address, project_id)
            await self.parts.ssh_keys.logged_in(grant, project_id, address=self.address, what="ssh")
        except Exception:
            log.exception("ssh: the login of %s to %s could not complete", self.address, project_id)
            self.conn.close()

    # -- forwarding -------------------------------------------------------------------

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Any:
        if not forward.forwardable(dest_host, dest_port):
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                "only ports of the project itself (localhost:PORT) can be forwarded",
            )

        async def handle(
            reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]
        ) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.track(task)
            await self.ready.wait()
            upstream = await self._open_forward(dest_port)
            if upstream is None:
                writer.close()
                return
            await forward.splice((reader, writer), upstream, self.touch)

        return handle

    async def _open_forward(
        self, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        assert self.project_id is not None
        backend = self.parts.lifecycle.backend
        address = backend.address(self.project_id)
        if address is None or not await backend.serves_port(self.project_id, port):
            return None
        try:
            return await forward.open_project_port(address, port)
        except (OSError, TimeoutError):
            return None

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False  # remote forwarding: the project's ports stay its own


class SshGateway:
    """The SSH server, started on the hub's sockets and closed with the hub."""

    def __init__(self, parts: GatewayParts) -> None:
        self.parts = parts
        self._acceptors: list[asyncssh.SSHAcceptor] = []

    def _login_of(self, chan: asyncssh.SSHServerChannel[Any]) -> ProjectLogin:
        owner = chan.get_connection().get_owner()
        assert isinstance(owner, ProjectLogin)
        return owner

    async def _run_process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        login = self._login_of(process.channel)
        task = asyncio.current_task()
        assert task is not None
        login.track(task)
        await login.ready.wait()
        assert login.grant is not None and login.project_id is not None
        if process.subsystem is not None:
            process.stderr.write(f"unknown subsystem {process.subsystem!r}\r\n".encode())
            process.exit(1)
            return
        try:
            address = await self.parts.lifecycle.agent(
                login.project_id,
                wait=START_WAIT,
                account_id=login.grant.account_id,
                reason="SSH login",
            )
            agent = await self.parts.agents.exec_stream(address)
        except DomainError as exc:
            process.stderr.write(f"cocalc: {exc.message}\r\n".encode())
            process.exit(1)
            return
        try:
            login.touch()
            await session.relay(process, agent, login.touch)
        except (OSError, asyncssh.Error, ConnectionError) as exc:
            log.warning("ssh: a session of %s ended: %r", login.address, exc)
            process.exit(255)
        finally:
            await agent.close()

    async def _sftp(self, chan: asyncssh.SSHServerChannel[bytes]) -> ProjectSFTPServer:
        login = self._login_of(chan)
        await login.ready.wait()
        assert login.fs is not None and login.project_id is not None
        project_id, quota = login.project_id, self.parts.disk_quota
        login.touch()
        return ProjectSFTPServer(
            chan,
            login.fs,
            login.touch,
            room=lambda: quota.room(project_id),
            wrote=lambda size: quota.wrote(project_id, size),
        )

    async def start(self, *, host_key: asyncssh.SSHKey, sockets: list[socket.socket]) -> None:
        """Listen on `sockets` (bound, not yet listening)."""
        for sock in sockets:
            sock.listen(100)
            sock.setblocking(False)
            acceptor = await asyncssh.listen(
                sock=sock,
                server_factory=lambda: ProjectLogin(self.parts),
                server_host_keys=[host_key],
                process_factory=self._run_process,
                sftp_factory=self._sftp,
                allow_scp=False,  # legacy `scp -O` runs the project's own scp instead
                encoding=None,
                line_editor=False,
                agent_forwarding=False,
                x11_forwarding=False,
                login_timeout=LOGIN_TIMEOUT,
                keepalive_interval=30,
                config=None,
            )
            self._acceptors.append(acceptor)

    async def close(self) -> None:
        for acceptor in self._acceptors:
            acceptor.close()
        for acceptor in self._acceptors:
            with contextlib.suppress(Exception):
                await acceptor.wait_closed()
        self._acceptors.clear()
