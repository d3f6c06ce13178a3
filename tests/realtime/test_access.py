"""Who may use the realtime channel: a signed-in browser from the hub's own origin or an
API key; a removed collaborator is taken out of the project's documents at once; a banned
account's sockets close."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from cocalc_k8s.keys import CONNECTIONS
from cocalc_k8s.web.auth import SESSION_COOKIE
from tests.realtime.client import DocClient, wait_for


def session_cookie(member: Any) -> str:
    for cookie in member.user.client.session.cookie_jar:
        if cookie.key == SESSION_COOKIE:
            return str(cookie.value)
    raise AssertionError("no session cookie")


async def test_session_cookie_from_the_hub_origin_only(team: Any) -> None:
    project_id, (alice,) = await team(1)
    cookie = f"{SESSION_COOKIE}={session_cookie(alice)}"
    for transports in (["websocket"], ["polling"]):
        own = DocClient(alice.url, headers={"Cookie": cookie, "Origin": alice.url})
        await own.connect(transports)
        assert (await own.join(project_id, "a.txt"))["ok"]
        await own.close()
        evil = DocClient(alice.url, headers={"Cookie": cookie, "Origin": "http://evil.example"})
        with pytest.raises(socketio.exceptions.ConnectionError):
            await evil.connect(transports)
    anonymous = DocClient(alice.url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await anonymous.connect()
    ((_, refused),) = anonymous.events
    assert "sign in" in repr(refused) and "unauthorized" in repr(refused)
    bad_key = DocClient(alice.url, key="not-a-key")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await bad_key.connect()


async def test_a_removed_collaborator_is_taken_out_at_once(team: Any) -> None:
    project_id, (alice, bob) = await team(2)
    a, b = alice.client(), bob.client()
    await a.connect()
    await b.connect()
    await a.join(project_id, "plan.txt")
    await b.join(project_id, "plan.txt")
    assert (await b.call("watch", {"project_id": project_id}))["ok"]
    await b.append("bob was here\n")
    status, _ = await alice.user.call(
        "DELETE", f"/api/v2/projects/{project_id}/collaborators/{bob.user.account_id}"
    )
    assert status == 204
    await wait_for(lambda: any(e == "closed" for e, _ in b.events), within=5)
    (closed,) = [d for e, d in b.events if e == "closed"]
    assert closed["code"] == "access-removed" and closed["doc"] == a.doc_id
    ack = await b.append("still here?")
    assert ack["error"]["code"] == "not-joined"
    assert (await b.join(project_id, "plan.txt"))["error"]["code"] == "not-found"
    await a.append("alice goes on\n")
    assert a.text == "bob was here\nalice goes on\n"
    assert "still here?" not in a.text
    await a.close()
    await b.close()


async def test_a_banned_account_is_disconnected(team: Any) -> None:
    project_id, (admin, bob) = await team(2, admin=True)
    b = bob.client()
    await b.connect()
    await b.join(project_id, "x.txt")
    status, _ = await admin.user.call(
        "PATCH", f"/api/v2/admin/accounts/{bob.user.account_id}", {"banned": True}
    )
    assert status == 204
    await wait_for(lambda: not b.sio.connected, within=5)
    assert [e for e, _ in b.events if e == "revoked"] == ["revoked"]


async def test_sign_out_and_a_deleted_key_end_their_sockets_at_once(team: Any) -> None:
    project_id, (alice,) = await team(1)
    cookie = f"{SESSION_COOKIE}={session_cookie(alice)}"
    by_cookie = DocClient(alice.url, headers={"Cookie": cookie, "Origin": alice.url})
    by_key = alice.client()
    for client in (by_cookie, by_key):
        await client.connect()
        assert (await client.join(project_id, "notes.txt"))["ok"]
    connections = alice.user.client.server.app[CONNECTIONS]
    # One socket is one connection, however many projects it reaches.
    assert connections.by_kind().get("realtime") == 2

    status, keys = await alice.user.call("GET", "/api/v2/api-keys")
    (key,) = keys["api_keys"]
    status, _ = await alice.user.call("DELETE", f"/api/v2/api-keys/{key['id']}")
    assert status == 204
    await wait_for(lambda: not by_key.sio.connected, within=5)
    assert [d["code"] for e, d in by_key.events if e == "revoked"] == ["key-revoked"]
    assert by_cookie.sio.connected  # the session still stands

    status, _ = await alice.user.call("POST", "/api/v2/auth/sign-out")
    assert status == 204
    await wait_for(lambda: not by_cookie.sio.connected, within=5)
    assert [d["code"] for e, d in by_cookie.events if e == "revoked"] == ["signed-out"]
    await wait_for(lambda: "realtime" not in connections.by_kind(), within=5)
