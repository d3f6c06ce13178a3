"""An origin per project (a wildcard content URL): links, redirects and sign-in land on
the project's own origin, content is never served under another project's, and pages of
other origins cannot ride the visitor's content cookie (in either mode)."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from cocalc_k8s.core.content_origin import ContentOrigins, valid_template
from cocalc_k8s.keys import CONTENT_ORIGIN, CONTENT_ORIGINS
from tests.conftest import sign_up
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(60)
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
    shared = ContentOrigins("https://projects.example.org/")
    assert not shared.per_project
    assert shared.url_for(PROJECT) == "https://projects.example.org"
    assert shared.serves(b"anything", PROJECT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def owner(make_client: Any) -> User:
    port = _free_port()
    client = await make_client(content_port=port, content_url=f"http://*.localhost:{port}")
    return User(client, await sign_up(client))


async def _get(url: str, host: str, **headers: str) -> aiohttp.ClientResponse:
    """GET `url` (on 127.0.0.1) as if its host were `host` (names under .localhost are
    loopback for browsers, not necessarily for this machine's resolver)."""
    async with aiohttp.ClientSession() as session:
        response = await session.get(url, headers={"Host": host, **headers}, allow_redirects=False)
        await response.read()
        return response


async def test_links_redirects_and_hosts(owner: User) -> None:
    project_id, other = await new_project(owner), await new_project(owner, "other")
    port = urlsplit(owner.client.app[CONTENT_ORIGIN]).port
    own_host = f"{project_id}.localhost:{port}"
    assert owner.client.app[CONTENT_ORIGINS].url_for(project_id) == f"http://{own_host}"
    resp = await owner.client.put(
        f"/api/v2/projects/{project_id}/files/hello.txt", data=b"hello", headers=owner.headers
    )
    assert resp.status in (200, 201)
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(owner, project_id, "running")
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "k"})
    bearer = f"Bearer {key['key']}"

    # The project page links to the project's own origin.
    html = await (await owner.client.get(f"/projects/{project_id}")).text()
    assert f"http://{own_host}/{project_id}/port/jupyterlab/lab" in html
    # The hub origin sends content URLs there.
    resp = await owner.client.get(f"/{project_id}/raw/hello.txt", allow_redirects=False)
    assert resp.headers["Location"] == f"http://{own_host}/{project_id}/raw/hello.txt"

    base = f"http://127.0.0.1:{port}/{project_id}/raw/hello.txt"
    resp = await _get(base, own_host, Authorization=bearer)
    assert resp.status == 200 and await resp.read() == b"hello"
    # Asked on another project's origin (or the bare domain): sent to its own.
    for host in (f"{other}.localhost:{port}", f"localhost:{port}", f"127.0.0.1:{port}"):
        resp = await _get(base, host, Authorization=bearer)
        assert resp.status == 307, host
        assert resp.headers["Location"] == f"http://{own_host}/{project_id}/raw/hello.txt"

    # Signing in: the grant comes back on the project's origin, and only works there.
    resp = await owner.client.get(
        f"/content-auth?project_id={project_id}&next=/{project_id}/raw/hello.txt",
        allow_redirects=False,
    )
    grant = urlsplit(resp.headers["Location"])
    assert grant.netloc == own_host
    exchange = f"http://127.0.0.1:{port}{grant.path}?{grant.query}"
    assert (await _get(exchange, f"{other}.localhost:{port}")).status == 403
    resp = await _get(exchange, own_host)
    assert resp.status == 302
    set_cookie = resp.headers["Set-Cookie"]
    assert "Domain" not in set_cookie and f"Path=/{project_id}/" in set_cookie
    cookie = set_cookie.split(";", 1)[0]

    # The cookie opens the project when a link is followed, not for another page's fetch.
    navigate = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate"}
    assert (await _get(base, own_host, Cookie=cookie, **navigate)).status == 200
    fetch = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}
    resp = await _get(base, own_host, Cookie=cookie, **fetch)
    assert resp.status == 403
    # An API key is an explicit credential, not an ambient one: allowed from anywhere.
    assert (await _get(base, own_host, Authorization=bearer, **fetch)).status == 200
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")


async def test_other_sites_cannot_ride_the_cookie_on_a_shared_origin(make_client: Any) -> None:
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    await owner.client.put(
        f"/api/v2/projects/{project_id}/files/hello.txt", data=b"hello", headers=owner.headers
    )
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(owner, project_id, "running")
    content = client.app[CONTENT_ORIGIN]
    resp = await client.get(
        f"/content-auth?project_id={project_id}&next=/{project_id}/raw/hello.txt",
        allow_redirects=False,
    )
    host = urlsplit(content).netloc
    async with aiohttp.ClientSession() as session:
        exchange = await session.get(resp.headers["Location"], allow_redirects=False)
        cookie = exchange.headers["Set-Cookie"].split(";", 1)[0]
    url = f"{content}/{project_id}/raw/hello.txt"
    for site, mode, method, status in (
        ("cross-site", "navigate", "GET", 200),
        ("none", "navigate", "GET", 200),
        ("cross-site", "no-cors", "GET", 403),
        ("same-site", "cors", "GET", 403),
        ("cross-site", "navigate", "POST", 403),
    ):
        async with aiohttp.ClientSession() as session:
            answer = await session.request(
                method,
                url,
                headers={
                    "Host": host,
                    "Cookie": cookie,
                    "Sec-Fetch-Site": site,
                    "Sec-Fetch-Mode": mode,
                },
                allow_redirects=False,
            )
            assert answer.status == status, (site, mode, method, await answer.text())
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
