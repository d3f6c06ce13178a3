"""ssh sessions through the hub's SSH server with the real OpenSSH client: commands with
their output streams and exit status, logins by short id, the project log."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from tests.ssh.conftest import SshUser

pytestmark = pytest.mark.timeout(120)


async def test_command_output_and_exit_status(alice: SshUser, project: str) -> None:
    result = await alice.ssh(project, "echo $((6*7))")
    assert (result.code, result.stdout) == (0, b"42\n"), result.stderr
    result = await alice.ssh(project, "exit 3")
    assert result.code == 3
    result = await alice.ssh(project[:8], "echo out; echo err >&2; cat; exit 5", stdin=b"piped\n")
    assert (result.code, result.stdout, result.stderr) == (5, b"out\npiped\n", b"err\n")
    status, log = await alice.user.call("GET", f"/api/v2/projects/{project}/events")
    assert status == 200
    assert any(event["kind"] == "ssh.login" for event in log["events"])


async def test_a_session_is_activity_for_the_idle_culler(
    alice: SshUser, project: str, database_url: str
) -> None:
    def last_active() -> object:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT last_active FROM projects WHERE project_id = %s", (project,)
            ).fetchone()
        assert row is not None
        return row[0]

    assert await asyncio.to_thread(last_active) is None
    assert (await alice.ssh(project, "true")).code == 0
    async with asyncio.timeout(10):  # written in the background, right after the touch
        while True:
            if await asyncio.to_thread(last_active) is not None:
                return
            await asyncio.sleep(0.05)
