"""The proxy on the content origin: a real project server behind it, real clients in front."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cocalc_k8s.keys import ACCOUNTS, CONNECTIONS, CONTENT_ORIGINS
from tests.conftest import sign_up
from tests.localhost import localhost_session
from tests.project_servers import served_in
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(60)
BIG = bytes(range(256)) * 20_000  # 5 MB


def project_server_app() -> web.Application:
    """What a user might run in a project: echoes what reached it."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body_length": len(body),
            }
        )

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(BIG), 65536):
            await response.write(BIG[i : i + 65536])
        await response.write_eof()
        return response

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="application/octet-stream")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/landing")

    async def cookies(request: web.Request) -> web.Response:
        response = web.Response(text="cookies")
        response.set_cookie("cocalc_session", "planted-by-project")
        response.set_cookie("__Host-cocalc_session", "planted", secure=True)
        response.set_cookie("app_pref", "dark")
        return response

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse(protocols=("chat",))
        await socket_.prepare(request)
        async for msg in socket_:
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "close-please":
                await socket_.close(code=4001, message=b"asked to")
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await socket_.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await socket_.send_bytes(msg.data[::-1])
        return socket_

    app = web.Application(client_max_size=10 * 1024**2)
    app.router.add_route("*", "/{prefix:.*}/echo", echo)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/{prefix:.*}big", big)
    app.router.add_get("/{prefix:.*}sized", sized)
    app.router.add_get("/{prefix:.*}redirect", redirect)
    app.router.add_get("/{prefix:.*}cookies", cookies)
    app.router.add_get("/{prefix:.*}ws", ws)
    return app


@pytest.fixture
async def project_server(setup: dict[str, Any]) -> AsyncIterator[int]:
    """The project's web server, on the project's own loopback."""
    with served_in(
        setup["owner"], setup["project_id"], "tests.test_proxy:project_server_app"
    ) as port:
        yield port


@pytest.fixture
async def setup(make_client: Any) -> AsyncIterator[dict[str, Any]]:
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(owner, project_id, "running")
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "proxy"})
    content = client.app[CONTENT_ORIGINS].url_for(project_id)  # the project's own origin
    # A browser: one cookie jar for both origins (cookies ignore ports).
    jar = aiohttp.CookieJar(unsafe=True)
    for cookie in client.session.cookie_jar:
        jar.update_cookies({cookie.key: cookie.value}, client.make_url("/"))
    browser = localhost_session(cookie_jar=jar, headers={"Accept": "text/html"})
    yield {
        "owner": owner,
        "project_id": project_id,
        "content": content,
        "key": key["key"],
        "browser": browser,
        "hub": str(client.make_url("")).rstrip("/"),
    }
    await browser.close()
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")


async def new_collaborator(setup: dict[str, Any], make_client: Any) -> User:
    """Another account on the same hub, added to the project."""
    owner: User = setup["owner"]
    client = await make_client(same_hub_as=owner.client)
    collaborator = User(client, await sign_up(client))
    status, body = await owner.call(
        "POST",
        f"/api/v2/projects/{setup['project_id']}/collaborators",
        {"email": collaborator.info["email"]},
    )
    assert status == 201, body
    return collaborator


def api(setup: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {setup['key']}"}


async def test_browser_signs_in_through_redirects_and_reaches_the_server(
    setup: dict[str, Any], project_server: int
) -> None:
    url = f"{setup['content']}/{setup['project_id']}/port/{project_server}/echo?x=1"
    async with setup["browser"].get(url) as resp:
        assert resp.status == 200, await resp.text()
        seen = await resp.json()
        hops = [str(r.url) for r in resp.history]
    assert any("/content-auth" in hop for hop in hops)
    assert seen["path"] == f"/{setup['project_id']}/port/{project_server}/echo?x=1"
    cookie_header = seen["headers"].get("Cookie", "")
    assert "cocalc_session" not in cookie_header and "cocalc_content" not in cookie_header
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"
    # The content cookie is scoped to the project's path and never readable by scripts.
    content_cookies = [c for c in setup["browser"].cookie_jar if c.key == "cocalc_content"]
    assert len(content_cookies) == 1
    assert content_cookies[0]["path"] == f"/{setup['project_id']}/"
    assert content_cookies[0]["httponly"]


async def test_server_prefix_is_stripped_and_redirects_rewritten(
    setup: dict[str, Any], project_server: int
) -> None:
    base = f"{setup['content']}/{setup['project_id']}/server/{project_server}"
    async with localhost_session(headers=api(setup)) as session:
        async with session.get(base + "/echo") as resp:
            seen = await resp.json()
        assert seen["path"] == "/echo"
        assert (
            seen["headers"]["X-Forwarded-Prefix"]
            == f"/{setup['project_id']}/server/{project_server}"
        )
        assert "Authorization" not in seen["headers"]  # the hub's API key stays with the hub
        async with session.get(base + "/redirect", allow_redirects=False) as resp:
            assert resp.status == 302
            assert (
                resp.headers["Location"]
                == f"/{setup['project_id']}/server/{project_server}/landing"
            )


async def test_bodies_stream_both_ways(setup: dict[str, Any], project_server: int) -> None:
    base = f"{setup['content']}/{setup['project_id']}/port/{project_server}"

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(BIG), 100_000):
            yield BIG[i : i + 100_000]

    async with localhost_session(headers=api(setup)) as session:
        async with session.get(base + "/big") as resp:
            assert resp.status == 200 and await resp.read() == BIG
        async with session.get(base + "/sized") as resp:
            assert resp.headers["Content-Length"] == str(len(BIG))
            assert await resp.read() == BIG
        async with session.post(base + "/echo", data=chunks()) as resp:
            assert (await resp.json())["body_length"] == len(BIG)
        async with session.put(base + "/echo", data=BIG[:1000]) as resp:
            assert (await resp.json())["body_length"] == 1000
        async with session.head(base + "/sized") as resp:
            assert resp.status == 200
        # The same keep-alive connection still works after all of that.
        async with session.get(base + "/echo") as resp:
            assert (await resp.json())["method"] == "GET"


async def test_project_cannot_plant_hub_cookies(setup: dict[str, Any], project_server: int) -> None:
    url = f"{setup['content']}/{setup['project_id']}/port/{project_server}/cookies"
    async with localhost_session(headers=api(setup)) as session, session.get(url) as resp:
        planted = resp.headers.getall("Set-Cookie", [])
    assert any(c.startswith("app_pref=") for c in planted)
    assert not any("cocalc_session" in c for c in planted)


async def test_websocket_through_the_proxy(setup: dict[str, Any], project_server: int) -> None:
    url = f"{setup['content']}/{setup['project_id']}/port/{project_server}/ws"
    connections = setup["owner"].client.app[CONNECTIONS]
    assert connections.stats()["connections_by_kind"].get("proxy", 0) == 0
    async with (
        localhost_session(headers=api(setup)) as session,
        session.ws_connect(url, protocols=("chat",)) as ws,
    ):
        assert ws.protocol == "chat"
        # Counted among the connected clients on the admin page while it is open.
        assert connections.stats()["connections_by_kind"]["proxy"] == 1
        await ws.send_str("hello")
        assert await ws.receive_str() == "echo:hello"
        await ws.send_bytes(b"\x01\x02\x03")
        assert await ws.receive_bytes() == b"\x03\x02\x01"
        await ws.send_str("close-please")
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4001
    deadline = asyncio.get_running_loop().time() + 5
    while connections.stats()["connections_by_kind"].get("proxy", 0):
        assert asyncio.get_running_loop().time() < deadline, "the tunnel is still counted"
        await asyncio.sleep(0.01)


async def test_removed_collaborator_loses_an_open_websocket(
    setup: dict[str, Any], project_server: int, make_client: Any
) -> None:
    owner: User = setup["owner"]
    bob = await new_collaborator(setup, make_client)
    _, key = await bob.call("POST", "/api/v2/api-keys", {"name": "bob"})
    url = f"{setup['content']}/{setup['project_id']}/port/{project_server}/ws"
    async with localhost_session(headers={"Authorization": f"Bearer {key['key']}"}) as session:
        async with session.ws_connect(url) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str() == "echo:hi"
            await owner.call(
                "DELETE", f"/api/v2/projects/{setup['project_id']}/collaborators/{bob.account_id}"
            )
            async with asyncio.timeout(5):
                msg = await ws.receive()
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        async with session.get(url.replace("/ws", "/echo")) as resp:
            assert resp.status == 404


async def test_refusals(setup: dict[str, Any], project_server: int, make_client: Any) -> None:
    content, project_id = setup["content"], setup["project_id"]
    stranger_client = await make_client(same_hub_as=setup["owner"].client)
    stranger = User(stranger_client, await sign_up(stranger_client))
    _, key = await stranger.call("POST", "/api/v2/api-keys", {"name": "s"})
    async with localhost_session() as anonymous:
        async with anonymous.get(f"{content}/{project_id}/port/{project_server}/echo") as resp:
            assert resp.status == 401
        async with anonymous.get(
            f"{content}/{project_id}/port/{project_server}/echo",
            headers={"Authorization": f"Bearer {key['key']}"},
        ) as resp:
            assert resp.status == 404
        async with anonymous.get(f"{content}/not-a-project/port/1/") as resp:
            assert resp.status == 404
        forged = f"{content}/{project_id}/_cocalc/auth?token=v1.exchange.x.y.9999999999.sig&next=/"
        async with anonymous.get(forged) as resp:
            assert resp.status == 403
    async with localhost_session(headers=api(setup)) as session:
        for port, status in (("0", 400), ("70000", 400), ("abc", 400), (str(_closed_port()), 502)):
            async with session.get(f"{content}/{project_id}/port/{port}/x") as resp:
                assert resp.status == status, port
                assert "error" in json.loads(await resp.read())


async def test_stopped_project_is_503(setup: dict[str, Any], project_server: int) -> None:
    owner: User = setup["owner"]
    await owner.call("POST", f"/api/v2/projects/{setup['project_id']}/stop")
    await wait_state(owner, setup["project_id"], "stopped")
    url = f"{setup['content']}/{setup['project_id']}/port/{project_server}/echo"
    async with localhost_session(headers=api(setup)) as session, session.get(url) as resp:
        assert resp.status == 503
        assert (await resp.json())["error"] == "the project is not running"
    async with setup["browser"].get(url) as resp:
        assert resp.status == 503
        assert "not running" in await resp.text()


async def test_hub_origin_sends_project_urls_to_the_content_origin(
    setup: dict[str, Any],
) -> None:
    owner: User = setup["owner"]
    path = f"/{setup['project_id']}/port/8888/lab?x=1"
    resp = await owner.client.get(path, allow_redirects=False)
    assert resp.status == 307
    assert resp.headers["Location"] == setup["content"] + path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_raw_files_and_directory_index(setup: dict[str, Any]) -> None:
    owner: User = setup["owner"]
    project_id = setup["project_id"]
    for path, data in (
        ("site/index.html", b"<script>alert(1)</script>"),
        ("site/b.txt", b"0123456789"),
    ):
        resp = await owner.client.put(
            f"/api/v2/projects/{project_id}/files/{path}", data=data, headers=owner.headers
        )
        assert resp.status == 201
    base = f"{setup['content']}/{project_id}/raw"
    async with localhost_session(headers=api(setup)) as session:
        async with session.get(f"{base}/site/index.html") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert resp.headers["Content-Security-Policy"] == "sandbox"
        async with session.get(f"{base}/site/b.txt", headers={"Range": "bytes=2-4"}) as resp:
            assert resp.status == 206 and await resp.read() == b"234"
        async with session.get(f"{base}/site/") as resp:
            index = await resp.text()
            assert resp.status == 200 and 'href="b.txt"' in index and "index.html" in index
        async with session.get(f"{base}/site/missing.txt") as resp:
            assert resp.status == 404
        async with session.get(f"{base}/../../etc/passwd") as resp:
            assert resp.status in (400, 403, 404)


async def test_ports_of_others_are_refused(
    setup: dict[str, Any], project_server: int, make_client: Any
) -> None:
    """Each sandboxed project has a loopback of its own: neither the hub's own ports nor a
    server of another project can be reached through a project's URL (nothing answers
    there in the project's namespace)."""
    owner: User = setup["owner"]
    hub_port = owner.client.make_url("/").port
    other = await new_project(owner, "other")
    async with localhost_session(headers=api(setup)) as session:
        for project_id, port in ((setup["project_id"], hub_port), (other, project_server)):
            await owner.call("POST", f"/api/v2/projects/{project_id}/start")
            await wait_state(owner, project_id, "running")
            origin = owner.client.app[CONTENT_ORIGINS].url_for(project_id)
            async with session.get(f"{origin}/{project_id}/port/{port}/echo") as resp:
                assert resp.status == 502, (project_id, port)
                assert "nothing answers" in (await resp.json())["error"]
        url = f"{setup['content']}/{setup['project_id']}/port/{project_server}/echo"
        async with session.get(url) as resp:
            assert resp.status == 200  # its own server, of course
    await owner.call("POST", f"/api/v2/projects/{other}/stop")


async def test_banned_collaborator_loses_content_cookie_and_open_websocket(
    setup: dict[str, Any], project_server: int, make_client: Any
) -> None:
    owner: User = setup["owner"]
    bob = await new_collaborator(setup, make_client)
    # Bob's browser: the hub cookie, exchanged for a content-origin cookie by redirects.
    jar = aiohttp.CookieJar(unsafe=True)
    for cookie in bob.client.session.cookie_jar:
        jar.update_cookies({cookie.key: cookie.value}, bob.client.make_url("/"))
    base = f"{setup['content']}/{setup['project_id']}/port/{project_server}"
    async with localhost_session(cookie_jar=jar, headers={"Accept": "text/html"}) as browser:
        async with browser.get(f"{base}/echo") as resp:
            assert resp.status == 200
        async with browser.ws_connect(f"{base}/ws", origin=setup["content"]) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str() == "echo:hi"
            await owner.client.app[ACCOUNTS].set_banned(bob.account_id, True, by=owner.account_id)
            async with asyncio.timeout(5):
                msg = await ws.receive()
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        # The content cookie (valid for hours) no longer opens the project either.
        async with browser.get(f"{base}/echo", allow_redirects=False) as resp:
            assert resp.status in (302, 303, 403, 404), resp.status
