"""Revocation reaches every long-lived connection and content cookie at once, on every hub:
a ban, a deleted API key, a sign-out, a password change (other sessions) close the open
terminals, progress streams and proxied WebSockets they authorised, and end the content
cookies granted from them. Real hubs on one real database; every wait has a deadline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from cocalc_k8s.core.identity import Credential
from cocalc_k8s.core.tokens import token_hash
from cocalc_k8s.keys import ACCOUNTS, CONNECTIONS, LIVE_CONNECTIONS
from cocalc_k8s.web.auth import SESSION_COOKIE
from tests.conftest import sign_up
from tests.localhost import localhost_session
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project
from tests.test_proxy import project_server, setup

__all__ = ["project_server", "setup"]  # the fixtures, shared with the proxy tests

pytestmark = pytest.mark.timeout(90)
DEADLINE = 20.0  # a bound for a hung test, not a timing claim
Client = TestClient[Any, Any]


def origin(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


async def second_client(make_client: Any, hub: Client, cookies_of: Client | None = None) -> Client:
    """Another client of `hub` (own cookie jar), carrying the cookies of `cookies_of`."""
    client: Client = await make_client(same_hub_as=hub)
    if cookies_of is not None:
        for cookie in cookies_of.session.cookie_jar:
            client.session.cookie_jar.update_cookies({cookie.key: cookie.value})
    return client


async def closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Wait, with a deadline, until the server closes the socket; its close code."""
    async with asyncio.timeout(DEADLINE):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code


async def still_open(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The socket answers: a round trip through the shell."""
    marker = uuid.uuid4().hex[:8]
    await ws.send_str(json.dumps({"type": "input", "data": f"echo {marker}-ok\r"}))
    seen = b""
    async with asyncio.timeout(DEADLINE):
        while f"{marker}-ok".encode() not in seen:
            msg = await ws.receive()
            # (A CLOSE here follows the agent's {"type": "exit"}: the shell itself ended.)
            assert msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), (msg, seen)
            seen += msg.data if isinstance(msg.data, bytes) else msg.data.encode()


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        await asyncio.sleep(0.01)


@dataclass
class Scene:
    terminal_hub: Client  # runs the project and holds the terminal
    other_hub: Client  # where the revocation is made (the same hub, or a second process)
    victim: User  # signed in on the terminal hub
    project_id: str
    key: dict[str, Any]  # the victim's API key (id, key)
    admin: User  # on the other hub
    make_client: Any

    @property
    def terminal_path(self) -> str:
        return f"/api/v2/projects/{self.project_id}/terminals/main"


@pytest.fixture(params=["same hub", "second hub"])
async def scene(request: pytest.FixtureRequest, make_client: Any) -> AsyncIterator[Scene]:
    # The first hub takes the lifecycle lead, so it runs the project (the local backend's
    # agents are children of the hub that started them).
    terminal_hub = await make_client()
    other_hub = terminal_hub if request.param == "same hub" else await make_client()
    victim = User(terminal_hub, await sign_up(terminal_hub))
    project_id = await new_project(victim)
    await victim.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(victim, project_id, "running", deadline=60)
    status, key = await victim.call("POST", "/api/v2/api-keys", {"name": "script"})
    assert status == 201, key
    admin_client = await second_client(make_client, other_hub)
    admin = User(admin_client, await sign_up(admin_client))
    await other_hub.app[ACCOUNTS].make_admin(admin.info["email"])
    yield Scene(terminal_hub, other_hub, victim, project_id, key, admin, make_client)
    await victim.call("POST", f"/api/v2/projects/{project_id}/stop")


async def session_terminal(scene: Scene) -> aiohttp.ClientWebSocketResponse:
    client = scene.victim.client
    ws = await client.ws_connect(scene.terminal_path, headers={"Origin": origin(client)})
    await still_open(ws)
    return ws


async def test_a_ban_closes_open_terminals(scene: Scene) -> None:
    ws = await session_terminal(scene)
    path = f"/api/v2/admin/accounts/{scene.victim.account_id}"
    assert (await scene.admin.call("PATCH", path, {"banned": True}))[0] == 204
    assert await closed(ws) == 1008


async def test_deleting_an_api_key_closes_the_terminals_it_opened(scene: Scene) -> None:
    bearer = {"Authorization": f"Bearer {scene.key['key']}"}
    async with aiohttp.ClientSession(headers=bearer) as by_key:  # no cookie at all
        ws = await by_key.ws_connect(scene.terminal_hub.make_url(scene.terminal_path))
        await still_open(ws)
        session_ws = await session_terminal(scene)  # the same account, by its session
        resp = await by_key.delete(scene.other_hub.make_url(f"/api/v2/api-keys/{scene.key['id']}"))
        assert resp.status == 204
        assert await closed(ws) == 1008
        await still_open(session_ws)  # only what the key authorised ends
        await session_ws.close()


async def test_signing_out_closes_the_terminals_of_that_session(scene: Scene) -> None:
    ws = await session_terminal(scene)
    # The same session, used from the other hub: signing out there ends it here.
    same_session = await second_client(
        scene.make_client, scene.other_hub, cookies_of=scene.victim.client
    )
    resp = await same_session.post("/api/v2/auth/sign-out", headers=scene.victim.headers)
    assert resp.status == 204
    assert await closed(ws) == 1008


async def test_a_password_change_closes_the_terminals_of_other_sessions(scene: Scene) -> None:
    ws = await session_terminal(scene)
    elsewhere = await second_client(scene.make_client, scene.other_hub)
    resp = await elsewhere.post(
        "/api/v2/auth/sign-in",
        json={"email": scene.victim.info["email"], "password": "correct horse"},
    )
    assert resp.status == 200
    changer = User(elsewhere, await resp.json())
    status, body = await changer.call(
        "PATCH", "/api/v2/account", {"password": "correct horse", "new_password": "battery staple"}
    )
    assert status == 200, body
    assert await closed(ws) == 1008
    assert (await changer.call("GET", "/api/v2/account"))[0] == 200  # its own session stays


async def test_a_ban_ends_an_open_progress_stream(scene: Scene) -> None:
    url = f"/api/v2/projects/{scene.project_id}/progress?follow=1"
    async with scene.victim.client.get(url) as resp:
        assert resp.status == 200
        first = await resp.content.readline()
        assert b'"state": "running"' in first
        path = f"/api/v2/admin/accounts/{scene.victim.account_id}"
        assert (await scene.admin.call("PATCH", path, {"banned": True}))[0] == 204
        async with asyncio.timeout(DEADLINE):
            rest = await resp.content.read()  # returns when the hub ends the stream
        assert b"data:" not in rest


# The content origin: cookies granted from a session end with it.


def content_browser(user: User) -> aiohttp.ClientSession:
    """A browser holding `user`'s hub cookie (one jar for both origins: cookies ignore
    ports), which reaches the project's own origin under `localhost` as browsers do."""
    jar = aiohttp.CookieJar(unsafe=True)
    for cookie in user.client.session.cookie_jar:
        jar.update_cookies({cookie.key: cookie.value}, user.client.make_url("/"))
    return localhost_session(cookie_jar=jar, headers={"Accept": "text/html"})


async def refused_within_deadline(browser: aiohttp.ClientSession, url: str) -> int:
    """The content cookie is refused (its NOTIFY may trail the hub's answer by a moment)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        async with browser.get(url, allow_redirects=False) as resp:
            if resp.status != 200:
                return resp.status
        assert time.monotonic() < deadline, "the content cookie still works"
        await asyncio.sleep(0.02)


async def test_a_content_cookie_ends_with_sign_out(setup: dict[str, Any]) -> None:
    owner: User = setup["owner"]
    url = f"{setup['content']}/{setup['project_id']}/raw/"
    async with content_browser(owner) as browser:
        async with browser.get(url) as resp:  # redirects through the hub: cookie granted
            assert resp.status == 200
        assert any(c.key == "cocalc_content" for c in browser.cookie_jar)
        assert (await owner.call("POST", "/api/v2/auth/sign-out"))[0] == 204
        status = await refused_within_deadline(browser, url)
        assert status == 302  # sent to sign in again, through the hub


async def test_a_content_cookie_ends_with_a_password_change_elsewhere(
    setup: dict[str, Any], make_client: Any
) -> None:
    owner: User = setup["owner"]
    url = f"{setup['content']}/{setup['project_id']}/raw/"
    async with content_browser(owner) as browser:
        async with browser.get(url) as resp:
            assert resp.status == 200
        elsewhere = await second_client(make_client, owner.client)
        resp = await elsewhere.post(
            "/api/v2/auth/sign-in", json={"email": owner.info["email"], "password": "correct horse"}
        )
        changer = User(elsewhere, await resp.json())
        status, _ = await changer.call(
            "PATCH", "/api/v2/account", {"password": "correct horse", "new_password": "new pass 1"}
        )
        assert status == 200
        assert await refused_within_deadline(browser, url) == 302
        # The session that changed the password gets a content cookie as before.
        async with content_browser(changer) as fresh, fresh.get(url) as resp:
            assert resp.status == 200, await resp.text()


async def test_proxied_websockets_close_with_the_session_or_key_that_opened_them(
    setup: dict[str, Any], project_server: int
) -> None:
    owner: User = setup["owner"]
    ws_url = f"{setup['content']}/{setup['project_id']}/port/{project_server}/ws"
    bearer = {"Authorization": f"Bearer {setup['key']}"}
    async with content_browser(owner) as browser, localhost_session(headers=bearer) as script:
        async with browser.get(ws_url.replace("/ws", "/echo")) as resp:
            assert resp.status == 200  # the content cookie, granted from the session
        by_cookie = await browser.ws_connect(ws_url, origin=setup["content"])
        by_key = await script.ws_connect(ws_url)
        for ws in (by_cookie, by_key):
            await ws.send_str("hi")
            assert await ws.receive_str() == "echo:hi"
        _, keys = await owner.call("GET", "/api/v2/api-keys")
        await owner.call("DELETE", f"/api/v2/api-keys/{keys['api_keys'][0]['id']}")
        assert await closed(by_key) is not None
        await by_cookie.send_str("still")
        assert await by_cookie.receive_str() == "echo:still"  # the session is untouched
        await owner.call("POST", "/api/v2/auth/sign-out")
        assert await closed(by_cookie) is not None
    connections = owner.client.app[CONNECTIONS]
    await until(lambda: not connections.stats()["connections_by_kind"].get("proxy", 0))


# The registry's contract, as the realtime server will use it.


async def test_a_revocation_between_the_check_and_register_is_not_lost(
    make_client: Any,
) -> None:
    hub = await make_client()
    user = User(hub, await sign_up(hub))
    live = hub.app[LIVE_CONNECTIONS]
    token = next(c.value for c in hub.session.cookie_jar if c.key == SESSION_COOKIE)
    credential = Credential("session", token_hash(token).hex())
    account_id = uuid.UUID(user.account_id)
    ended: list[str] = []

    live.register("terminal", account_id, credential, None, lambda: ended.append("probe"))
    authorised_at = time.monotonic()  # a credential checked here...
    assert (await user.call("POST", "/api/v2/auth/sign-out"))[0] == 204
    await until(lambda: ended == ["probe"])  # ...its revocation heard (the probe closed)...
    late = live.register(  # ...and only then registered: closed at once all the same
        "realtime",
        account_id,
        credential,
        None,
        lambda: ended.append("late"),
        authorised_at=authorised_at,
    )
    await until(lambda: ended == ["probe", "late"])
    late()  # unregistering after the close is harmless
    assert live.count() == 0
    assert hub.app[CONNECTIONS].stats()["connected_clients"] == 0


async def test_registered_connections_are_counted_and_let_go(make_client: Any) -> None:
    hub = await make_client()
    user = User(hub, await sign_up(hub))
    live = hub.app[LIVE_CONNECTIONS]
    token = next(c.value for c in hub.session.cookie_jar if c.key == SESSION_COOKIE)
    credential = Credential("session", token_hash(token).hex())
    closes: list[int] = []
    unregister = live.register(
        "realtime", uuid.UUID(user.account_id), credential, None, lambda: closes.append(1)
    )
    assert hub.app[CONNECTIONS].stats()["connections_by_kind"] == {"realtime": 1}
    unregister()
    unregister()  # idempotent: counted once, let go once
    assert hub.app[CONNECTIONS].stats()["connections_by_kind"] == {}
    assert live.count() == 0 and closes == []
