"""Who gets in, and who is thrown out: keys of non-collaborators, deleted keys, project keys
of removed collaborators, passwords (never), the end of open sessions on removal, and the
failed-login limit per address."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from cocalc_k8s.keys import LIVE_CONNECTIONS
from tests.ssh.conftest import SshUser, run
from tests.test_projects_api import new_project

pytestmark = pytest.mark.timeout(120)


async def add_collaborator(owner: SshUser, project: str, other: SshUser) -> None:
    status, body = await owner.user.call(
        "POST", f"/api/v2/projects/{project}/collaborators", {"email": other.user.info["email"]}
    )
    assert status in (200, 201), body


async def remove_collaborator(owner: SshUser, project: str, other: SshUser) -> None:
    status, body = await owner.user.call(
        "DELETE", f"/api/v2/projects/{project}/collaborators/{other.user.account_id}"
    )
    assert status in (200, 204), body


async def test_only_collaborators_keys_open_a_project(
    alice: SshUser, project: str, make_ssh_user: Any
) -> None:
    mallory = await make_ssh_user()
    refused = await mallory.ssh(project, "echo in")
    assert refused.code == 255 and b"Permission denied (publickey)" in refused.stderr
    assert refused.stdout == b""
    # Nor another project's id, a project that does not exist, or an ambiguous name.
    for login in (str(uuid.uuid4()), "deadbeef", "nobody", project[:7]):
        result = await alice.ssh(login, "echo in")
        assert result.code == 255, login
    # Passwords are never offered, so none can be tried.
    result = await run(
        alice.ssh_argv(
            project, "-o", "PreferredAuthentications=password,keyboard-interactive", command="true"
        )
    )
    assert result.code == 255 and b"(publickey)" in result.stderr


async def test_deleted_key_and_removed_collaborators_project_key(
    alice: SshUser, project: str, make_ssh_user: Any
) -> None:
    bob = await make_ssh_user(add_key=False)
    await add_collaborator(alice, project, bob)
    public = bob.key.with_suffix(".pub").read_text()
    status, key = await bob.user.call(
        "POST", f"/api/v2/projects/{project}/ssh-keys", {"name": "ci", "public_key": public}
    )
    assert status == 201, key
    assert (await bob.ssh(project, "true")).code == 0
    await remove_collaborator(alice, project, bob)
    assert (await bob.ssh(project, "true")).code == 255  # his project key stops working
    _, keys = await alice.user.call("GET", f"/api/v2/projects/{project}/ssh-keys")
    assert [k["added_by"]["id"] for k in keys["ssh_keys"]] == [bob.user.account_id]
    # Alice's account key works until she deletes it.
    _, mine = await alice.user.call("GET", "/api/v2/ssh-keys")
    assert (await alice.ssh(project, "true")).code == 0
    status, _ = await alice.user.call("DELETE", f"/api/v2/ssh-keys/{mine['ssh_keys'][0]['id']}")
    assert status == 204
    assert (await alice.ssh(project, "true")).code == 255


async def wait_for_sessions(hub: Any, count: int) -> None:
    live = hub.app[LIVE_CONNECTIONS]
    async with asyncio.timeout(30):
        while True:
            if live.connections.by_kind().get("ssh", 0) == count:
                return
            await asyncio.sleep(0.02)


async def test_removal_and_key_deletion_end_open_sessions(
    hub: Any, alice: SshUser, project: str, make_ssh_user: Any
) -> None:
    bob = await make_ssh_user()
    await add_collaborator(alice, project, bob)
    assert (await bob.ssh(project, "true")).code == 0  # the project runs now
    session = asyncio.create_task(bob.ssh(project, "echo ready; sleep 60"))
    await wait_for_sessions(hub, 1)
    await remove_collaborator(alice, project, bob)
    async with asyncio.timeout(10):
        result = await session
    assert result.code == 255 and result.stdout == b"ready\n"
    await wait_for_sessions(hub, 0)
    session = asyncio.create_task(alice.ssh(project, "sleep 60"))
    await wait_for_sessions(hub, 1)
    _, mine = await alice.user.call("GET", "/api/v2/ssh-keys")
    await alice.user.call("DELETE", f"/api/v2/ssh-keys/{mine['ssh_keys'][0]['id']}")
    async with asyncio.timeout(10):
        assert (await session).code == 255


async def test_failed_logins_are_limited_per_address(make_ssh_user: Any) -> None:
    mallory = await make_ssh_user()
    victim = await make_ssh_user()
    project = await new_project(victim.user)
    attempts = 0
    while True:  # the default allows 50 failures per address in 15 minutes
        attempts += 1
        result = await mallory.ssh(project, "true")
        assert result.code == 255
        if b"too many failed logins" in result.stderr or attempts > 60:
            break
    assert 45 <= attempts <= 52, attempts
    # Now even a good key from this address is turned away until the window slides.
    result = await victim.ssh(project, "true")
    assert result.code == 255 and b"too many failed logins" in result.stderr
