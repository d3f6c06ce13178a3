"""Redirects to a user-chosen `next` stay on their origin and cannot add headers: the
sign-in pages of the hub and the content origin's sign-in (`/content-auth`, then
`/{project_id}/_cocalc/auth`). The hub origin's own parser refuses ambiguous framing."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from yarl import URL

from cocalc_k8s.core.redirect_targets import local_target
from cocalc_k8s.web.pages import safe_next
from tests.conftest import sign_up
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(60)

LOCAL = [
    "/",
    "/account",
    "/projects/1/files/my%20notes.txt?view=1#top",
    "/a//b",
    "/a/%2F/b",  # an encoded slash further in is a path, not a host
    "/sign-in?next=%2Faccount",
    "/p/..x/.hidden/a..b?q=/../",  # dots inside names, and in the query, are no segments
]
ELSEWHERE = [
    None,
    42,
    "",
    "account",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\nSet-Cookie: a=b",
    "/ /evil.example",
    " /account",
    "/account ",
    "/\x00",
    "/\x7f",
    "/\u3000/evil.example",
    "/\u2028/evil.example",
    "/é",
    "https://evil.example",
    "https:evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "/%09/evil.example",
    "/%0d%0aSet-Cookie:%20a=b",
    "/%0aSet-Cookie:%20a=b",
    "/%00",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "/%5C/evil.example",
    "/%5c%5cevil.example",
    "/p/../evil",
    "/p/./x",
    "/p/..",
    "/p/%2e%2e/x",
    "/p/.%2E/x",
]


@pytest.mark.parametrize("value", LOCAL)
def test_local_targets_are_kept(value: str) -> None:
    assert local_target(value) == value
    assert safe_next(value) == value


@pytest.mark.parametrize("value", ELSEWHERE)
def test_other_targets_are_refused(value: object) -> None:
    assert local_target(value) is None
    assert safe_next(value) == "/"


async def test_sign_in_never_redirects_off_the_hub(make_client: Any) -> None:
    client = await make_client()
    await sign_up(client)
    for value in ("/\t/evil.example", "/%09/evil.example", "//evil.example", "/\\evil.example"):
        url = URL("/sign-in?next=" + quote(value, safe=""), encoded=True)
        resp = await client.get(url, allow_redirects=False)  # signed in: straight to next
        assert resp.status == 303, value
        assert resp.headers["Location"] == "/", value


INJECTIONS = ["%0d%0aSet-Cookie:%20planted=1", "%0aSet-Cookie:%20planted=1", "%0d", "%00"]


async def test_content_auth_refuses_control_characters_in_next(make_client: Any) -> None:
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    for injection in INJECTIONS:
        url = URL(
            f"/content-auth?project_id={project_id}&next=/{project_id}/{injection}", encoded=True
        )
        resp = await client.get(url, allow_redirects=False)
        assert resp.status == 400, injection
        assert "next must be a path inside the project" in await resp.text()
        assert "planted" not in str(resp.headers)


async def test_the_content_origin_sign_in_cannot_be_made_to_add_headers(make_client: Any) -> None:
    """The issue's attack one step on: a valid grant with a `next` that would split the
    content origin's Location header. It falls back to the project's root."""
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    resp = await client.get(
        f"/content-auth?project_id={project_id}&next=/{project_id}/raw/a.txt",
        allow_redirects=False,
    )
    assert resp.status == 303
    grant = urlsplit(resp.headers["Location"])
    token = dict(part.split("=", 1) for part in grant.query.split("&"))["token"]
    async with aiohttp.ClientSession() as session:
        for injection in [*INJECTIONS, "%09/evil.example", "..%2F..%2F%2Fevil.example"]:
            query = f"token={token}&next=%2F{project_id}%2F{quote(injection, safe='%')}"
            url = URL(f"http://127.0.0.1:{grant.port}{grant.path}?{query}", encoded=True)
            async with session.get(
                url, headers={"Host": grant.netloc}, allow_redirects=False
            ) as answer:
                assert answer.status == 302, injection
                assert answer.headers["Location"] == f"/{project_id}/", injection
                cookies = answer.headers.getall("Set-Cookie")
                assert [c.split("=", 1)[0] for c in cookies] == ["cocalc_content"], cookies


SMUGGLING = [
    b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    b"Content-Length: 3\r\nContent-Length: 3\r\n",
    b"Transfer-Encoding: gzip\r\n",
]


@pytest.mark.parametrize("framing", SMUGGLING)
async def test_the_hub_origin_refuses_ambiguous_framing(make_client: Any, framing: bytes) -> None:
    """aiohttp's own parser on the hub origin: a load balancer in front of the hub could
    read such a request differently, so it must be refused, not interpreted."""
    client = await make_client()
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"POST /api/v2/auth/sign-in HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n" + body)
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer
    assert answer.count(b"HTTP/1.") == 1
