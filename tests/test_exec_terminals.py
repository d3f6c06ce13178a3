"""exec and shared terminals through the hub, on real local projects."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp
import pytest

from tests.conftest import sign_up
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def owner(make_client: Any) -> User:
    client = await make_client()
    return User(client, await sign_up(client))


def origin(user: User) -> str:
    return str(user.client.make_url("/")).rstrip("/")


async def test_exec_starts_a_stopped_project(owner: User) -> None:
    project_id = await new_project(owner)
    status, body = await owner.call(
        "POST", f"/api/v2/projects/{project_id}/exec", {"command": "echo hi; echo err >&2; exit 3"}
    )
    assert status == 200, body
    assert body["stdout"] == "hi\n" and body["stderr"] == "err\n" and body["exit_code"] == 3
    await wait_state(owner, project_id, "running")
    status, body = await owner.call(
        "POST", f"/api/v2/projects/{project_id}/exec", {"command": "sleep 5", "timeout": 0.5}
    )
    assert status == 200 and body["timed_out"] is True
    for bad in (
        {},
        {"command": ""},
        {"command": "true", "timeout": -1},
        {"command": "true", "timeout": "x"},
    ):
        status, body = await owner.call("POST", f"/api/v2/projects/{project_id}/exec", bad)
        assert status == 400, bad
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")


async def read_until(ws: aiohttp.ClientWebSocketResponse, needle: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(15):
        while needle not in seen:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                seen += msg.data
            elif msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket ended: {msg}")
    return seen


async def test_shared_terminal_between_collaborators(owner: User, make_client: Any) -> None:
    project_id = await new_project(owner)
    bob_client = await make_client(same_hub_as=owner.client)
    bob = User(bob_client, await sign_up(bob_client))
    await owner.call(
        "POST", f"/api/v2/projects/{project_id}/collaborators", {"email": bob.info["email"]}
    )
    url = f"/api/v2/projects/{project_id}/terminals/main"
    async with owner.client.ws_connect(url, headers={"Origin": origin(owner)}) as alice_ws:
        await alice_ws.send_str(json.dumps({"type": "input", "data": "echo $((6*7))\r"}))
        await read_until(alice_ws, b"42")
        async with bob.client.ws_connect(url, headers={"Origin": origin(bob)}) as bob_ws:
            await read_until(bob_ws, b"42")  # the scrollback, replayed
            await bob_ws.send_str(json.dumps({"type": "input", "data": "echo from-$USER-bob\r"}))
            await read_until(alice_ws, b"-bob")
            # Removing Bob closes his socket within the re-check period.
            status, _ = await owner.call(
                "DELETE", f"/api/v2/projects/{project_id}/collaborators/{bob.account_id}"
            )
            assert status == 204
            async with asyncio.timeout(10):
                while True:
                    msg = await bob_ws.receive()
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        break
            assert bob_ws.close_code == 1008
    _, listing = await owner.call("GET", f"/api/v2/projects/{project_id}/terminals")
    assert [t["name"] for t in listing["terminals"]] == ["main"]  # it outlives its viewers
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")


async def test_cross_origin_websocket_is_refused(owner: User, make_client: Any) -> None:
    project_id = await new_project(owner)
    url = f"/api/v2/projects/{project_id}/terminals/main"
    for headers in ({"Origin": "https://evil.example"}, {}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await owner.client.ws_connect(url, headers=headers)
        assert info.value.status == 403
    stranger_client = await make_client()
    stranger = User(stranger_client, await sign_up(stranger_client))
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await stranger.client.ws_connect(url, headers={"Origin": origin(stranger)})
    assert info.value.status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await owner.client.ws_connect(
            f"/api/v2/projects/{project_id}/terminals/bad%20name", headers={"Origin": origin(owner)}
        )
    assert info.value.status == 400
    _, project = await owner.call("GET", f"/api/v2/projects/{project_id}")
    assert project["state"] == "stopped"  # refused requests started nothing


async def test_usage_and_log(owner: User) -> None:
    project_id = await new_project(owner)
    _, body = await owner.call("GET", f"/api/v2/projects/{project_id}/usage")
    assert body == {"usage": None}
    await owner.call("POST", f"/api/v2/projects/{project_id}/exec", {"command": "true"})
    status, body = await owner.call("GET", f"/api/v2/projects/{project_id}/usage")
    assert status == 200
    assert body["usage"]["memory_rss_bytes"] > 0 and body["usage"]["processes"] >= 1
    resp = await owner.client.get(f"/api/v2/projects/{project_id}/log")
    assert resp.status == 200 and resp.content_type == "text/plain"
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")


@pytest.mark.skipif(os.geteuid() != 0, reason="per-project users need a hub running as root")
async def test_projects_run_as_users_of_their_own(owner: User) -> None:
    from cocalc_k8s.keys import SETTINGS

    data_dir = owner.client.app[SETTINGS].data_dir
    first, second = await new_project(owner), await new_project(owner)
    uids = []
    for project_id in (first, second):
        status, body = await owner.call(
            "POST", f"/api/v2/projects/{project_id}/exec", {"command": "id -u"}
        )
        assert status == 200, body
        uids.append(int(body["stdout"]))
    assert all(uid >= 200_000 for uid in uids) and uids[0] != uids[1]
    # Files the hub writes belong to the project's user, who can change them.
    resp = await owner.client.put(
        f"/api/v2/projects/{first}/files/notes/a.txt", data=b"hub", headers=owner.headers
    )
    assert resp.status == 201
    status, body = await owner.call(
        "POST",
        f"/api/v2/projects/{first}/exec",
        {"command": "echo project >> notes/a.txt && stat -c %u notes notes/a.txt"},
    )
    assert body["exit_code"] == 0 and body["stdout"].split() == [str(uids[0])] * 2
    # Nothing of the hub or of another project is readable.
    for command in (
        f"cat {data_dir / 'secret_key'}",
        f"ls {data_dir / 'projects' / second}",
        f"ls {data_dir / 'projects'}",
        f"ls {data_dir / 'postgres'}",
    ):
        status, body = await owner.call(
            "POST", f"/api/v2/projects/{first}/exec", {"command": command}
        )
        assert body["exit_code"] != 0, command
    for project_id in (first, second):
        await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
