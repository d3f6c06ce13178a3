"""The proxy's message heads (pure): no head is written with CR, LF or NUL inside a line,
and a request's body framing is read one way only."""

from __future__ import annotations

import uuid

import pytest

from cocalc_k8s.proxy import messages
from cocalc_k8s.proxy.messages import BadFraming, RequestHead, UnsafeHead, body_framing
from cocalc_k8s.proxy.routing import Route

ROUTE = Route(uuid.UUID(int=1), "port", 8888, None, "", "/x")
BAD = [b"\r\nSet-Cookie: a=b", b"\nSet-Cookie: a=b", b"\rX: y", b"a\x00b"]


def test_message_head_joins_lines() -> None:
    assert (
        messages.message_head([b"HTTP/1.1 200 OK", b"A: b"]) == b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"
    )


@pytest.mark.parametrize("bad", BAD)
def test_every_writer_refuses_cr_lf_nul(bad: bytes) -> None:
    with pytest.raises(UnsafeHead):
        messages.simple_response(302, b"", headers=[(b"Location", b"/p/" + bad)])
    with pytest.raises(UnsafeHead):
        messages.simple_response(200, b"", headers=[(b"X" + bad, b"v")])
    with pytest.raises(UnsafeHead):
        messages.client_response(
            200,
            b"",
            [(b"X-App", b"v" + bad)],
            ROUTE,
            upstream_origin="",
            chunked=False,
            policy=messages.OWN_ORIGIN,
        )
    with pytest.raises(UnsafeHead):  # a reason phrase is part of the head too
        messages.client_response(
            200,
            b"OK" + bad,
            [],
            ROUTE,
            upstream_origin="",
            chunked=False,
            policy=messages.OWN_ORIGIN,
        )
    head = RequestHead(method=b"GET", target=b"/x", headers=[(b"Host", b"h" + bad)])
    with pytest.raises(UnsafeHead):
        messages.upstream_request(head, ROUTE, path="/x")
    with pytest.raises(UnsafeHead):
        messages.upstream_request(
            RequestHead(method=b"GET", target=b"/x"), ROUTE, path="/x" + bad.decode("latin-1")
        )


def test_a_redirect_location_is_rewritten_but_still_checked() -> None:
    server = Route(uuid.UUID(int=1), "server", 8888, None, "/p/server/8888", "/x")
    head = messages.client_response(
        302,
        b"",
        [(b"Location", b"/login")],
        server,
        upstream_origin="http://127.0.0.1:8888",
        chunked=False,
        policy=messages.SHARED_ORIGIN_RAW,
    )
    assert b"Location: /p/server/8888/login\r\n" in head
    assert head.endswith(b"X-Content-Type-Options: nosniff\r\n\r\n")


@pytest.mark.parametrize(
    ("headers", "framing"),
    [
        ([], (False, None)),
        ([(b"Content-Length", b"12")], (False, 12)),
        ([(b"content-length", b" 7 ")], (False, 7)),
        ([(b"Transfer-Encoding", b"chunked")], (True, None)),
        ([(b"TRANSFER-ENCODING", b" Chunked ")], (True, None)),
        ([(b"Host", b"x"), (b"X-Transfer-Encoding", b"gzip")], (False, None)),
    ],
)
def test_body_framing(headers: messages.Headers, framing: tuple[bool, int | None]) -> None:
    assert body_framing(headers) == framing


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Transfer-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")],
        [(b"Transfer-Encoding", b"chunked"), (b"transfer-encoding", b"chunked")],
        [(b"Transfer-Encoding", b"gzip, chunked")],
        [(b"Transfer-Encoding", b"chunked, gzip")],
        [(b"Transfer-Encoding", b"gzip")],
        [(b"Transfer-Encoding", b"identity")],
        [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")],
        [(b"Content-Length", b"5"), (b"Content-Length", b"5")],
        [(b"Content-Length", b"5"), (b"Content-Length", b"6")],
        [(b"Content-Length", b"5, 5")],
        [(b"Content-Length", b"+5")],
        [(b"Content-Length", b"-1")],
        [(b"Content-Length", b"0x10")],
        [(b"Content-Length", b"")],
    ],
)
def test_ambiguous_framing_is_refused(headers: messages.Headers) -> None:
    with pytest.raises(BadFraming):
        body_framing(headers)
