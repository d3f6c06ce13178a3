"""An interactive shell through a pty (driven by pexpect), and forwarding: `ssh -L` reaches a
server inside the project and nothing outside it; remote and agent forwarding refused."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.ssh.conftest import SshUser, free_port, run

pytestmark = pytest.mark.timeout(180)


def drive_shell(argv: list[str]) -> int:
    """A login shell on a pty: a command, a resize, Ctrl-C, an exit status (blocking)."""
    child = pexpect.spawn(argv[0], argv[1:], timeout=30, dimensions=(24, 80))
    try:
        child.sendline("echo result=$((6*7))")
        child.expect("result=42")
        child.setwinsize(40, 120)
        child.sendline("stty size")
        child.expect("40 120")
        # Ctrl-C once the command is the terminal's foreground job (a Ctrl-C that reaches
        # bash between reading the line and starting the job is bash's, not the job's).
        child.sendline("sh -c 'echo sleep\"\"ing; exec sleep 60'")
        child.expect("sleeping")
        child.sendintr()
        child.sendline("echo back=$((1+1))")
        child.expect("back=2")
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus is not None
    return int(child.exitstatus)


async def test_interactive_shell_through_a_pty(alice: SshUser, project: str) -> None:
    argv = alice.ssh_argv(project, "-tt", command="bash --norc -i")
    assert await asyncio.to_thread(drive_shell, argv) == 7


async def http_get(port: int) -> bytes:
    """What a GET through a forwarded local port answers (b"" when the tunnel is shut)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(30):
            return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def listening(port: int, tunnel: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(20):
        while True:
            if tunnel.returncode is not None:
                assert tunnel.stderr is not None
                raise AssertionError(f"ssh -L exited: {await tunnel.stderr.read()!r}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


async def test_local_forwarding_reaches_only_the_project(
    hub: Any, alice: SshUser, project: str
) -> None:
    inner = random.randint(20_000, 40_000)
    started = await alice.ssh(
        project,
        f"echo inside > marker.txt; nohup python3 -m http.server {inner} --bind 127.0.0.1 "
        "> /dev/null 2>&1 & for i in $(seq 300); do "
        f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {inner}))' "
        "2>/dev/null && exit 0; sleep 0.1; done; exit 1",
    )
    assert started.code == 0, started.stderr
    hub_port = hub.server.port
    to_project, to_hub, elsewhere = free_port(), free_port(), free_port()
    tunnel = await asyncio.create_subprocess_exec(
        *alice.ssh_argv(
            project,
            "-N",
            "-L",
            f"{to_project}:localhost:{inner}",
            "-L",
            f"{to_hub}:127.0.0.1:{hub_port}",
            "-L",
            f"{elsewhere}:192.0.2.1:80",
        ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SSH_AUTH_SOCK": ""},
    )
    try:
        for port in (to_project, to_hub, elsewhere):
            await listening(port, tunnel)
        answer = await http_get(to_project)
        assert answer.startswith(b"HTTP/1.0 200") and b"marker.txt" in answer, answer[:300]
        # The hub's own port, seen from the project, is the project's own loopback: nothing
        # listens there. Any other host is refused before anything is connected.
        assert await http_get(to_hub) == b""
        assert await http_get(elsewhere) == b""
    finally:
        if tunnel.returncode is None:
            tunnel.terminate()
        await tunnel.wait()


async def test_remote_and_agent_forwarding_are_refused(
    alice: SshUser, project: str, tmp_path: Path
) -> None:
    remote = await run(
        alice.ssh_argv(
            project, "-o", "ExitOnForwardFailure=yes", "-R", "0:localhost:80", command="true"
        )
    )
    assert remote.code == 255 and b"forwarding failed" in remote.stderr.lower()
    agent_socket = tmp_path / "agent.sock"
    fake_agent = socket.socket(socket.AF_UNIX)
    fake_agent.bind(str(agent_socket))
    fake_agent.listen()
    try:
        result = await run(
            alice.ssh_argv(project, "-A", command='echo "[$SSH_AUTH_SOCK]"'),
            env={"SSH_AUTH_SOCK": str(agent_socket)},
        )
    finally:
        fake_agent.close()
    assert (result.code, result.stdout) == (0, b"[]\n"), result.stderr
