"""A real hub with its SSH server on a free loopback port, users with keys added through
the API, and the real OpenSSH client (ssh, scp, sftp) and rsync driven as subprocesses
(asynchronously: the hub runs on the test's own event loop)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from cocalc_k8s.keys import SSH_HOST
from tests.conftest import sign_up
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_key(folder: Path, name: str, algorithm: str = "ssh-ed25519", **kwargs: Any) -> Path:
    """A private key file (mode 0600) for the OpenSSH client; its .pub beside it."""
    key = asyncssh.generate_private_key(algorithm, **kwargs)
    path = folder / name
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    path.with_suffix(".pub").write_bytes(key.export_public_key())
    return path


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: bytes


@dataclass
class SshUser:
    user: User
    key: Path
    port: int

    def options(self) -> list[str]:
        return [
            "-i",
            str(self.key),
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR",
            "-F", "/dev/null",
        ]  # fmt: skip

    def ssh_argv(self, login: str, *options: str, command: str | None = None) -> list[str]:
        argv = ["ssh", "-p", str(self.port), *self.options(), *options, f"{login}@127.0.0.1"]
        return argv if command is None else [*argv, command]

    async def ssh(self, login: str, command: str, *options: str, stdin: bytes = b"") -> Result:
        return await run(self.ssh_argv(login, *options, command=command), stdin=stdin)

    def rsh(self) -> str:
        """What rsync's -e gets."""
        return " ".join(["ssh", "-p", str(self.port), *self.options()])


async def run(
    argv: Sequence[str],
    *,
    stdin: bytes = b"",
    seconds: float = 60,
    env: dict[str, str] | None = None,
) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SSH_AUTH_SOCK": "", **(env or {})},
    )
    async with asyncio.timeout(seconds):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return Result(proc.returncode, out, err)


@pytest.fixture
def tools() -> None:
    missing = [tool for tool in ("ssh", "scp", "sftp", "rsync") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the SSH tests need {', '.join(missing)} under CI (scripts/test.sh)")
        pytest.skip(f"not installed: {', '.join(missing)}")


@pytest.fixture
async def hub(make_client: Any, tools: None) -> Any:
    return await make_client(ssh_port=free_port())


@pytest.fixture
async def make_ssh_user(hub: Any, tmp_path: Path, make_client: Any) -> Any:
    count = 0

    async def make(*, add_key: bool = True) -> SshUser:
        nonlocal count
        count += 1
        client = await make_client(same_hub_as=hub)
        user = User(client, await sign_up(client))
        key = make_key(tmp_path, f"id_{count}")
        if add_key:
            status, body = await user.call(
                "POST",
                "/api/v2/ssh-keys",
                {"name": "laptop", "public_key": key.with_suffix(".pub").read_text()},
            )
            assert status == 201, body
        return SshUser(user, key, hub.app[SSH_HOST].port)

    return make


@pytest.fixture
async def alice(make_ssh_user: Any) -> SshUser:
    return await make_ssh_user()


@pytest.fixture
async def project(alice: SshUser) -> str:
    return await new_project(alice.user)
