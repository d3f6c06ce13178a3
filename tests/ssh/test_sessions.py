"""ssh sessions through the hub's SSH server with the real OpenSSH client: commands with
their output streams and exit status, logins by short id, the project log."""

from __future__ import annotations

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
