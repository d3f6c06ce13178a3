"""HTTP/1.1 message heads for the proxy (pure): what is forwarded, what is dropped.

Requests lose hop-by-hop headers and the hub's own credentials (its cookies, its API
keys) and gain X-Forwarded-*; responses lose hop-by-hop headers and any Set-Cookie that
would overwrite a hub cookie (cookies are shared between ports of one host), get the
headers of their content-origin mode (`ResponsePolicy`), and redirects from /server/ apps
are moved under their prefix.

Every head the proxy writes, either way, is put together by `message_head`, which
refuses CR, LF and NUL inside a line: a value that carried them (a redirect target, a
header of a project's server) would otherwise end its line and add headers of its own.
A request body's framing is read once, by `body_framing`, which refuses what two parsers
could read differently (RFC 9112 §6).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cocalc_k8s.proxy.routing import Route, rewrite_location

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
PROTECTED_COOKIES = frozenset({b"cocalc_session", b"__Host-cocalc_session", b"cocalc_content"})
REASONS = {
    100: "Continue",
    101: "Switching Protocols",
    103: "Early Hints",
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class ResponsePolicy:
    """What a project's response head loses (`dropped`: lower-case names) and gains
    (`added`) on its way to the browser; chosen by the gate per content-origin mode."""

    dropped: frozenset[bytes]
    added: tuple[tuple[bytes, bytes], ...] = ()


_NOSNIFF = (b"X-Content-Type-Options", b"nosniff")
_SANDBOX = (b"Content-Security-Policy", b"sandbox")  # raw files: never a page of the origin
# An origin per project: no other origin may load its responses as images, scripts and
# the like (they carry the visitor's content cookie), nor have them sniffed into scripts.
OWN_ORIGIN = ResponsePolicy(
    HOP_BY_HOP | {b"cross-origin-resource-policy", b"x-content-type-options"},
    ((b"Cross-Origin-Resource-Policy", b"same-origin"), _NOSNIFF),
)
OWN_ORIGIN_RAW = ResponsePolicy(OWN_ORIGIN.dropped, (*OWN_ORIGIN.added, _SANDBOX))
# One origin for all projects: a Service Worker must never get a scope beyond its own
# project's path (it would see every project page the visitor opens afterwards).
SHARED_ORIGIN = ResponsePolicy(HOP_BY_HOP | {b"service-worker-allowed"})
SHARED_ORIGIN_RAW = ResponsePolicy(
    SHARED_ORIGIN.dropped | {b"x-content-type-options"}, (_SANDBOX, _NOSNIFF)
)
TUNNEL = ResponsePolicy(frozenset())  # a 101 keeps its Connection and Upgrade


class UnsafeHead(ValueError):
    """A message head would carry CR, LF or NUL inside a line."""


class BadFraming(ValueError):
    """The request's Content-Length / Transfer-Encoding are ambiguous or invalid."""


def message_head(lines: list[bytes]) -> bytes:
    """The start line and header lines as one head, blank line included.

    Raises UnsafeHead when a line holds CR, LF or NUL. One pass over the joined head is
    cheaper than a look at each line: it holds exactly the CR LF of the line breaks."""
    raw = b"\r\n".join(lines)
    if len(raw.translate(None, b"\r\n\0")) != len(raw) - 2 * (len(lines) - 1):
        raise UnsafeHead("CR, LF or NUL inside a message head")
    return raw + b"\r\n\r\n"


def body_framing(headers: Headers) -> tuple[bool, int | None]:
    """(chunked, content length) of a request; BadFraming when they are ambiguous.

    llhttp reads the last of several Transfer-Encoding lines and a proxy that reads the
    first sees another body: the rest would become a second request on a pooled upstream
    connection. So only one `Transfer-Encoding: chunked` is accepted, never together with
    Content-Length, and at most one Content-Length of digits."""
    encoding: bytes | None = None
    length: bytes | None = None
    for name, value in headers:
        size = len(name)  # lower() only for names as long as the two that matter
        if size == 17 and name.lower() == b"transfer-encoding":
            if encoding is not None:
                raise BadFraming("Transfer-Encoding is given more than once")
            encoding = value
        elif size == 14 and name.lower() == b"content-length":
            if length is not None:
                raise BadFraming("Content-Length is given more than once")
            length = value
    if encoding is not None:
        if length is not None:
            raise BadFraming("Content-Length and Transfer-Encoding exclude each other")
        if encoding.strip().lower() != b"chunked":
            raise BadFraming("the only Transfer-Encoding accepted is chunked")
        return True, None
    if length is None:
        return False, None
    digits = length.strip()
    if not digits.isdigit():
        raise BadFraming("Content-Length must be a number")
    return False, int(digits)


@dataclass(slots=True)
class RequestHead:
    method: bytes
    target: bytes
    headers: Headers = field(default_factory=list)
    client: str = ""
    scheme: str = "http"
    chunked: bool = False
    upgrade: bool = False

    def get(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def strip_cookies(value: bytes, also: frozenset[bytes] = frozenset()) -> bytes:
    """The Cookie header without the hub's cookies (and those named in `also`)."""
    kept = [
        part
        for part in value.split(b";")
        if (name := _cookie_pair_name(part)) not in PROTECTED_COOKIES and name not in also
    ]
    return b";".join(kept).strip()


def _cookie_pair_name(part: bytes) -> bytes:
    return part.strip().split(b"=", 1)[0].strip()


def _cookie_name(set_cookie: bytes) -> bytes:
    name = set_cookie.split(b"=", 1)[0].strip()
    for prefix in (b"__Host-", b"__Secure-"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _supplied(
    extra: Sequence[tuple[bytes, bytes]],
) -> tuple[frozenset[bytes], bytes, frozenset[bytes]]:
    """(names of headers `extra` replaces, the cookies it supplies, their names)."""
    cookies = [value for name, value in extra if name.lower() == b"cookie"]
    replaced = frozenset(name.lower() for name, _ in extra) - {b"cookie"}
    names = frozenset(_cookie_pair_name(part) for value in cookies for part in value.split(b";"))
    return replaced, b"; ".join(cookies), names


def upstream_request(
    head: RequestHead, route: Route, *, path: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> bytes:
    """The request head for the upstream. Headers in `extra` (a credential the proxy
    supplies) replace the client's of the same name; a Cookie in `extra` replaces only the
    client's cookies of the same names (it comes first, which servers read first)."""
    lines = [head.method + b" " + path.encode("latin-1") + b" HTTP/1.1"]
    forwarded_for = head.client.encode()
    replaced, supplied, also = _supplied(extra) if extra else (frozenset(), b"", frozenset())
    for name, value in head.headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or (head.chunked and lower == b"content-length"):
            continue
        if lower in replaced:
            continue
        if lower == b"cookie":
            value = strip_cookies(value, also)
            if supplied:
                value, supplied = (supplied + b"; " + value if value else supplied), b""
            if not value:
                continue
        elif lower == b"authorization" and value[:10].lower() == b"bearer ck_":
            continue  # the hub's API key: a project never sees a user's credential
        elif lower == b"x-forwarded-for":
            forwarded_for = value + b", " + forwarded_for
            continue
        elif lower.startswith(b"x-forwarded-"):
            continue
        lines.append(name + b": " + value)
    host = head.get(b"host") or b""
    lines.append(b"X-Forwarded-For: " + forwarded_for)
    lines.append(b"X-Forwarded-Proto: " + head.scheme.encode())
    lines.append(b"X-Forwarded-Host: " + host)
    if route.prefix:
        lines.append(b"X-Forwarded-Prefix: " + route.prefix.encode())
    lines.extend(name + b": " + value for name, value in extra if name.lower() != b"cookie")
    if supplied:  # the client sent no cookie
        lines.append(b"Cookie: " + supplied)
    if head.upgrade:
        lines.append(b"Connection: Upgrade")
        lines.append(b"Upgrade: " + (head.get(b"upgrade") or b"websocket"))
    elif head.chunked:
        lines.append(b"Transfer-Encoding: chunked")
    return message_head(lines)


def client_response(
    status: int,
    reason: bytes,
    headers: Headers,
    route: Route,
    *,
    upstream_origin: str,
    chunked: bool,
    policy: ResponsePolicy,
) -> bytes:
    lines = [b"HTTP/1.1 %d " % status + (reason or REASONS.get(status, "").encode())]
    dropped = policy.dropped
    for name, value in headers:
        lower = name.lower()
        if lower in dropped:
            continue
        if lower == b"set-cookie":
            if _cookie_name(value) in PROTECTED_COOKIES:
                continue
        elif lower == b"location" and 300 <= status < 400:
            value = rewrite_location(value.decode("latin-1"), route, upstream_origin).encode(
                "latin-1"
            )
        lines.append(name + b": " + value)
    if chunked and status != 101:
        lines.append(b"Transfer-Encoding: chunked")
    lines.extend(name + b": " + value for name, value in policy.added)
    return message_head(lines)


def interim_response(status: int) -> bytes:
    """A 1xx other than 101 (100 Continue, 103 Early Hints), passed on without headers."""
    return message_head([b"HTTP/1.1 %d %s" % (status, REASONS.get(status, "").encode())])


def simple_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: Iterable[tuple[bytes, bytes]] = (),
    close: bool = False,
) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s" % (status, REASONS.get(status, "").encode()),
        b"Content-Type: " + content_type,
        b"Content-Length: %d" % len(body),
        b"Cache-Control: no-store",
    ]
    lines.extend(name + b": " + value for name, value in headers)
    if close:
        lines.append(b"Connection: close")
    return message_head(lines) + body


def wants_html(head: RequestHead) -> bool:
    return head.method in (b"GET", b"HEAD") and b"text/html" in (head.get(b"accept") or b"")


def error_response(head: RequestHead, status: int, message: str) -> bytes:
    """A small page for browsers, `{"error": message}` for everyone else."""
    if wants_html(head):
        text = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        page = (
            f"<!doctype html><meta charset=utf-8><title>{status}</title>"
            f"<h1>{status}</h1><p>{text}</p>"
        )
        return simple_response(status, page.encode(), content_type=b"text/html; charset=utf-8")
    body = json.dumps({"error": message}).encode()
    return simple_response(status, body, content_type=b"application/json")
