"""Request smuggling and response splitting through the content port, against a pooled
upstream connection: what the proxy forwards is what it parsed, one request for one
request and one response for one response."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.content_port import ContentPort, content_port, raw_upstream

pytestmark = pytest.mark.timeout(60)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED_SMUGGLED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)


def post(framing: bytes, body: bytes) -> bytes:
    return b"POST /upload HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n" + body


SMUGGLING = {
    # The attack: llhttp reads the last value (chunked), a proxy the first.
    "gzip then chunked": post(
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", CHUNKED_SMUGGLED
    ),
    "chunked twice": post(
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", CHUNKED_SMUGGLED
    ),
    "gzip, chunked": post(b"Transfer-Encoding: gzip, chunked\r\n", CHUNKED_SMUGGLED),
    "chunked, gzip": post(b"Transfer-Encoding: chunked, gzip\r\n", CHUNKED_SMUGGLED),
    "not chunked at all": post(b"Transfer-Encoding: gzip\r\n", SMUGGLED),
    "xchunked": post(b"Transfer-Encoding: xchunked\r\n", CHUNKED_SMUGGLED),
    "chunked and length": post(
        b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", CHUNKED_SMUGGLED
    ),
    "length and chunked": post(
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", CHUNKED_SMUGGLED
    ),
    "two lengths": post(b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(SMUGGLED), SMUGGLED),
    "length list": post(b"Content-Length: 0, %d\r\n" % len(SMUGGLED), SMUGGLED),
    "signed length": post(b"Content-Length: +%d\r\n" % len(SMUGGLED), SMUGGLED),
}


async def _clean_request_through_the_pool(port: ContentPort) -> None:
    """A normal request afterwards: served, on what the pool holds, with nothing queued
    on it from before."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port.port}/after", data=b"abc") as resp,
    ):
        assert resp.status == 200
        assert await resp.text() == "POST /after 3"


@pytest.mark.parametrize("name", list(SMUGGLING))
async def test_ambiguous_framing_is_400_and_reaches_no_upstream(name: str) -> None:
    async with content_port() as port:
        await _clean_request_through_the_pool(port)  # an upstream connection is pooled
        answer = await port.exchange(SMUGGLING[name])
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert b"Connection: close" in answer
        await _clean_request_through_the_pool(port)
        paths = [path for _, path, _ in port.upstream.seen]
        assert paths == ["/after", "/after"], paths


async def test_chunked_bodies_still_pass() -> None:
    async with content_port() as port:
        for encoding in (b"chunked", b"Chunked ", b"CHUNKED"):
            answer = await port.exchange(
                b"POST /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: "
                + encoding
                + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            assert answer.endswith(b"POST /c 5"), answer
        assert [body for _, _, body in port.upstream.seen] == [b"hello"] * 3


async def test_a_request_in_the_same_read_as_the_one_before_is_not_forwarded() -> None:
    """A second request that starts in the bytes of the first (a body after a GET) must not
    reach the project's server inside the first one's connection."""
    async with content_port() as port:
        await _clean_request_through_the_pool(port)
        second = b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
        answer = await port.exchange(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n" + second + SMUGGLED)
        # The first is answered, then the connection closes: the client may retry the rest.
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"GET /first 0"), answer
        assert answer.count(b"HTTP/1.1 ") == 1
        await _clean_request_through_the_pool(port)
        paths = [path for _, path, _ in port.upstream.seen]
        assert paths == ["/after", "/first", "/after"], paths


async def test_pipelined_requests_in_separate_reads_are_answered_in_turn() -> None:
    async with content_port() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        writer.write(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(10):
            first = await reader.readuntil(b"GET /one 0")
        writer.write(b"GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(10):
            second = await reader.read()
        writer.close()
        assert first.startswith(b"HTTP/1.1 200 ") and second.endswith(b"GET /two 0")


async def test_a_second_response_from_the_server_is_never_passed_on() -> None:
    """A project's server that answers one request with two responses cannot answer the
    client's next request (or someone else's, on the pooled connection) in advance."""
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
    planted = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nplanted"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n"
    for reply, tail in ((first + planted, b""), (chunked + planted, b"\r\n0\r\n\r\n")):
        async with raw_upstream(reply) as upstream, content_port(forward_to=upstream.port) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
            received = b""
            for _ in range(3):  # one client connection, three requests in turn
                writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
                async with asyncio.timeout(10):
                    received += await reader.readuntil(b"first") + await reader.readexactly(
                        len(tail)
                    )
            writer.close()
            assert b"planted" not in received
            assert received.count(b"HTTP/1.1 200") == 3
            assert len(upstream.heads) == 3


@pytest.mark.parametrize(
    "header",
    [b"X-App: a\rSet-Cookie: planted=1", b"X-App: a\nSet-Cookie: planted=1", b"X-App: a\x00b"],
)
async def test_a_server_header_with_cr_lf_or_nul_is_not_passed_on(header: bytes) -> None:
    reply = b"HTTP/1.1 200 OK\r\n" + header + b"\r\nContent-Length: 2\r\n\r\nok"
    async with raw_upstream(reply) as upstream, content_port(forward_to=upstream.port) as port:
        answer = await port.exchange(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 502 "), answer
    assert b"planted" not in answer


async def test_encoded_cr_lf_in_the_path_stays_encoded() -> None:
    async with content_port() as port:
        answer = await port.exchange(
            b"GET /a%0d%0aSet-Cookie:%20planted=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    # The project's server got it as it was sent (aiohttp decodes it and finds no route).
    assert answer.startswith(b"HTTP/1.1 404 ") and b"aiohttp" in answer, answer
    assert b"\r\nSet-Cookie" not in answer


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /a\r\n HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"GET /a HTTP/1.1\nHost: x\n\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
    ],
)
async def test_malformed_heads_are_400(raw: bytes) -> None:
    async with content_port() as port:
        answer = await port.exchange(raw)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert port.upstream.seen == []
