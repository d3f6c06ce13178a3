"""The content origin's two modes. By default (and with a wildcard content URL) each
project has an origin of its own: links, redirects and sign-in land there, content is
never served under another project's, a WebSocket must come from the project's own
origin, and responses tell browsers to keep them to it. A single-host content URL is the
explicit, warned-about shared mode, where Service Workers are refused. Non-browser clients
reach a project host by its Host header or by being told its address."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from cocalc_k8s.core.content_origin import ContentOrigins, is_loopback, valid_template
from cocalc_k8s.core.settings import Settings, SettingsError
from cocalc_k8s.keys import CONTENT_ORIGIN, CONTENT_ORIGINS
from tests.conftest import sign_up
from tests.localhost import localhost_session
from tests.project_servers import served_in
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(90)
PROJECT = "0b6c1a52-8c4c-4e44-9a8e-3b6d2f1f9d10"


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://projects.example.org", True),
        ("https://*.projects.example.org", True),
        ("http://*.localhost:8081", True),
        ("https://*.example.org/", True),
        ("https://a.*.example.org", False),
        ("https://*", False),
        ("https://*.", False),
        ("ftp://*.example.org", False),
        ("https://*.example.org/path", False),
        ("https://user@*.example.org", False),
    ],
)
def test_content_url_templates(url: str, valid: bool) -> None:
    assert valid_template(url) is valid


def test_an_origin_per_project() -> None:
    origins = ContentOrigins("https://*.projects.example.org")
    assert origins.per_project
    assert origins.url_for(PROJECT) == f"https://{PROJECT}.projects.example.org"
    assert origins.serves(f"{PROJECT}.projects.example.org".encode(), PROJECT)
    assert origins.serves(f"{PROJECT.upper()}.Projects.Example.org:443".encode(), PROJECT)
    assert not origins.serves(b"projects.example.org", PROJECT)
    assert not origins.serves(b"other.projects.example.org", PROJECT)
    assert not origins.serves(None, PROJECT)
    own = f"https://{PROJECT}.projects.example.org"
    assert origins.is_own(own.encode(), PROJECT)
    assert origins.is_own(f"{own}:443".encode(), PROJECT)
    for origin in (f"http://{PROJECT}.projects.example.org", f"{own}:8443", "null", ""):
        assert not origins.is_own(origin.encode(), PROJECT), origin
    assert not origins.is_own(b"https://other.projects.example.org", PROJECT)
    assert not origins.is_own(b"https://x:notaport", PROJECT)
    shared = ContentOrigins("https://projects.example.org/")
    assert not shared.per_project
    assert shared.url_for(PROJECT) == "https://projects.example.org"
    assert shared.serves(b"anything", PROJECT)


def test_loopback_names() -> None:
    for host in ("localhost", "p1.localhost", "LOCALHOST.", "127.0.0.1", "127.8.0.1", "[::1]"):
        assert is_loopback(host), host
    for host in ("localhost.example.org", "example.org", "10.0.0.1", "", None):
        assert not is_loopback(host), host


def test_the_default_is_an_origin_per_project_under_localhost(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, content_port=8081)
    assert settings.content_origin(8081) == "http://*.localhost:8081"
    assert not settings.content_tls  # loopback traffic; no certificate per project host
    assert not Settings(data_dir=tmp_path, tls="self-signed").content_tls
    tls = Settings(data_dir=tmp_path, tls="self-signed", content_url="https://*.localhost:8081")
    assert tls.content_tls
    # Reached from other machines, the hub must be told; a shared origin is only by choice.
    with pytest.raises(SettingsError, match="--content-url is needed"):
        Settings(data_dir=tmp_path, base_url="https://cocalc.example.org")
    with pytest.raises(SettingsError, match="--content-url is needed"):
        Settings(data_dir=tmp_path, host="10.1.2.3")
    Settings(data_dir=tmp_path, base_url="https://hub.example.org", content_url="https://*.p.org")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _running_project(user: User) -> str:
    project_id = await new_project(user)
    resp = await user.client.put(
        f"/api/v2/projects/{project_id}/files/hello.txt", data=b"hello", headers=user.headers
    )
    assert resp.status in (200, 201)
    await user.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(user, project_id, "running", deadline=60)
    return project_id


async def _content_cookie(user: User, project_id: str, host: str) -> str:
    """The content cookie a browser gets for the project (the sign-in redirects)."""
    resp = await user.client.get(
        f"/content-auth?project_id={project_id}&next=/{project_id}/raw/hello.txt",
        allow_redirects=False,
    )
    grant = urlsplit(resp.headers["Location"])
    assert grant.netloc == host
    exchange = await _get(host, f"{grant.path}?{grant.query}")
    assert exchange.status == 302
    set_cookie = exchange.headers["Set-Cookie"]
    assert "Domain" not in set_cookie and f"Path=/{project_id}/" in set_cookie
    return set_cookie.split(";", 1)[0]


async def _get(host: str, target: str, method: str = "GET", **headers: str) -> Any:
    """`target` asked of the content port on 127.0.0.1 with `Host: host`: how a client
    whose resolver knows nothing of `*.localhost` reaches a project's origin."""
    port = urlsplit("//" + host).port
    async with aiohttp.ClientSession() as session:
        response = await session.request(
            method,
            f"http://127.0.0.1:{port}{target}",
            headers={"Host": host, **headers},
            allow_redirects=False,
        )
        await response.read()
        return response


@pytest.fixture
async def owner(make_client: Any) -> AsyncIterator[User]:
    client = await make_client()  # the default: an origin per project under localhost
    user = User(client, await sign_up(client))
    yield user
    _, body = await user.call("GET", "/api/v2/projects")
    for project in body["projects"]:
        await user.call("POST", f"/api/v2/projects/{project['project_id']}/stop")


async def test_links_redirects_and_hosts(owner: User) -> None:
    project_id = await _running_project(owner)
    other = await new_project(owner, "other")
    port = urlsplit(owner.client.app[CONTENT_ORIGIN]).port
    own_host = f"{project_id}.localhost:{port}"
    assert owner.client.app[CONTENT_ORIGINS].url_for(project_id) == f"http://{own_host}"
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "k"})
    bearer = f"Bearer {key['key']}"

    # The project page links to the project's own origin.
    html = await (await owner.client.get(f"/projects/{project_id}")).text()
    assert f"http://{own_host}/{project_id}/port/jupyterlab/lab" in html
    # The hub origin sends content URLs there.
    resp = await owner.client.get(f"/{project_id}/raw/hello.txt", allow_redirects=False)
    assert resp.headers["Location"] == f"http://{own_host}/{project_id}/raw/hello.txt"

    target = f"/{project_id}/raw/hello.txt"
    resp = await _get(own_host, target, Authorization=bearer)
    assert resp.status == 200 and await resp.read() == b"hello", await resp.read()
    # Asked on another project's origin (or the bare name): sent to its own.
    for host in (f"{other}.localhost:{port}", f"localhost:{port}", f"127.0.0.1:{port}"):
        resp = await _get(host, target, Authorization=bearer)
        assert resp.status == 307, host
        assert resp.headers["Location"] == f"http://{own_host}{target}"

    # Signing in: the grant comes back on the project's origin, and only works there.
    resp = await owner.client.get(
        f"/content-auth?project_id={project_id}&next={target}", allow_redirects=False
    )
    grant = urlsplit(resp.headers["Location"])
    assert grant.netloc == own_host
    exchange = f"{grant.path}?{grant.query}"
    assert (await _get(f"{other}.localhost:{port}", exchange)).status == 403
    cookie = await _content_cookie(owner, project_id, own_host)

    # The cookie opens the project when a link is followed, not for another page's fetch.
    navigate = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate"}
    assert (await _get(own_host, target, Cookie=cookie, **navigate)).status == 200
    fetch = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}
    assert (await _get(own_host, target, Cookie=cookie, **fetch)).status == 403
    # An API key is an explicit credential, not an ambient one: allowed from anywhere.
    assert (await _get(own_host, target, Authorization=bearer, **fetch)).status == 200


async def test_an_api_key_client_reaches_a_project_host(owner: User) -> None:
    """The two ways docs/settings.md and the README give: the address passed explicitly
    (`curl --resolve`, or a resolver that knows `*.localhost`), or the Host header."""
    project_id = await _running_project(owner)
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "script"})
    url = f"{owner.client.app[CONTENT_ORIGINS].url_for(project_id)}/{project_id}/raw/hello.txt"
    bearer = {"Authorization": f"Bearer {key['key']}"}
    async with localhost_session(headers=bearer) as session, session.get(url) as resp:
        assert resp.status == 200 and await resp.read() == b"hello"
    resp = await _get(urlsplit(url).netloc, urlsplit(url).path, **bearer)
    assert resp.status == 200 and await resp.read() == b"hello"
    resp = await _get(urlsplit(url).netloc, urlsplit(url).path)
    assert resp.status == 401  # no key, no content
    curl = shutil.which("curl")
    if curl is None:
        return  # what follows is what the README shows; the above is the same request
    resolve = f"{urlsplit(url).hostname}:{urlsplit(url).port}:127.0.0.1"
    process = await asyncio.create_subprocess_exec(
        curl, "-sS", "--resolve", resolve, "-H", f"Authorization: Bearer {key['key']}", url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0 and out == b"hello"


@pytest.fixture
async def served(owner: User) -> AsyncIterator[tuple[str, int]]:
    project_id = await _running_project(owner)
    with served_in(owner, project_id, "tests.origin_servers:worker_app") as port:
        yield project_id, port


async def test_responses_stay_on_the_project_origin(owner: User, served: tuple[str, int]) -> None:
    project_id, port = served
    host = urlsplit(owner.client.app[CONTENT_ORIGINS].url_for(project_id)).netloc
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "k"})
    bearer = {"Authorization": f"Bearer {key['key']}"}
    for target in (f"/{project_id}/port/{port}/page.html", f"/{project_id}/raw/hello.txt"):
        resp = await _get(host, target, **bearer)
        assert resp.status == 200, (target, await resp.text())
        assert resp.headers.getall("Cross-Origin-Resource-Policy") == ["same-origin"]
        assert resp.headers.getall("X-Content-Type-Options") == ["nosniff"]
    # On its own origin, a project's Service Worker may take a wide scope: it is the
    # project's alone.
    resp = await _get(
        host, f"/{project_id}/port/{port}/sw.js", **bearer, **{"Service-Worker": "script"}
    )
    assert resp.status == 200 and resp.headers["Service-Worker-Allowed"] == "/"


async def test_a_websocket_must_come_from_the_project_origin(
    owner: User, served: tuple[str, int]
) -> None:
    project_id, port = served
    origins = owner.client.app[CONTENT_ORIGINS]
    own = origins.url_for(project_id)
    cookie = await _content_cookie(owner, project_id, urlsplit(own).netloc)
    other = origins.url_for(await new_project(owner, "other"))
    hub = str(owner.client.make_url("")).rstrip("/")
    url = f"{own}/{project_id}/port/{port}/ws"
    async with localhost_session(headers={"Cookie": cookie}) as browser:
        async with browser.ws_connect(url, origin=own) as ws:
            await ws.send_str("hi")
            assert (await ws.receive(timeout=10)).data == "echo:hi"
        for origin in (other, hub, "null"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await browser.ws_connect(url, origin=origin)
            assert refused.value.status == 403, origin


@pytest.fixture
async def shared(make_client: Any, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    port = _free_port()
    with caplog.at_level(logging.WARNING, logger="cocalc_k8s.app"):
        client = await make_client(content_port=port, content_url=f"http://127.0.0.1:{port}")
    warning = [r.getMessage() for r in caplog.records if r.name == "cocalc_k8s.app"]
    assert any("NO protection between projects" in m for m in warning), warning
    user = User(client, await sign_up(client))
    yield user
    _, body = await user.call("GET", "/api/v2/projects")
    for project in body["projects"]:
        await user.call("POST", f"/api/v2/projects/{project['project_id']}/stop")


async def test_a_shared_origin_is_opt_in_and_refuses_service_workers(shared: User) -> None:
    project_id = await _running_project(shared)
    host = urlsplit(shared.client.app[CONTENT_ORIGIN]).netloc
    assert not shared.client.app[CONTENT_ORIGINS].per_project
    _, key = await shared.call("POST", "/api/v2/api-keys", {"name": "k"})
    bearer = {"Authorization": f"Bearer {key['key']}"}
    with served_in(shared, project_id, "tests.origin_servers:worker_app") as port:
        worker = f"/{project_id}/port/{port}/sw.js"
        resp = await _get(host, worker, **bearer)
        assert resp.status == 200  # the file itself, as a plain script
        assert "Service-Worker-Allowed" not in resp.headers
        resp = await _get(host, worker, **bearer, **{"Service-Worker": "script"})
        assert resp.status == 403
        assert "Service Workers" in (await resp.json())["error"]


async def test_other_sites_cannot_ride_the_cookie_on_a_shared_origin(shared: User) -> None:
    project_id = await _running_project(shared)
    content = shared.client.app[CONTENT_ORIGIN]
    host = urlsplit(content).netloc
    cookie = await _content_cookie(shared, project_id, host)
    target = f"/{project_id}/raw/hello.txt"
    for site, mode, method, status in (
        ("cross-site", "navigate", "GET", 200),
        ("none", "navigate", "GET", 200),
        ("cross-site", "no-cors", "GET", 403),
        ("same-site", "cors", "GET", 403),
        ("cross-site", "navigate", "POST", 403),
    ):
        headers = {"Cookie": cookie, "Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode}
        answer = await _get(host, target, method, **headers)
        assert answer.status == status, (site, mode, method)
    # Same origin: only a page of the same project (by its Referer, which a page can forge:
    # this keeps honest pages apart, it protects against nothing).
    other = f"{content}/{PROJECT}/port/80/evil.html"
    for referer, status in (
        ({"Referer": other}, 403),
        ({}, 403),  # a page that hides its address
        ({"Referer": f"{content}/{project_id}/port/1/app"}, 200),
    ):
        headers = {"Cookie": cookie, "Sec-Fetch-Site": "same-origin", **referer}
        assert (await _get(host, target, **headers)).status == status, referer
