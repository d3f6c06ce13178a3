"""HTTP/1.1 message heads for the proxy (pure): what is forwarded, what is dropped.

Requests lose hop-by-hop headers and the hub's own credentials (its cookies, its API
keys) and gain X-Forwarded-*; responses lose hop-by-hop headers and any Set-Cookie that
would overwrite a hub cookie (cookies are shared between ports of one host), and
redirects from /server/ apps are moved under their prefix.
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
PROTECTED_COOKIES = frozenset({b"cocalc_session", b"cocalc_content"})
REASONS = {
    200: "OK",
    101: "Switching Protocols",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Headers = list[tuple[bytes, bytes]]


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


def strip_cookies(value: bytes) -> bytes:
    """The Cookie header without the hub's cookies."""
    kept = [
        part
        for part in value.split(b";")
        if part.strip().split(b"=", 1)[0].strip() not in PROTECTED_COOKIES
    ]
    return b";".join(kept).strip()


def _cookie_name(set_cookie: bytes) -> bytes:
    name = set_cookie.split(b"=", 1)[0].strip()
    for prefix in (b"__Host-", b"__Secure-"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def upstream_request(
    head: RequestHead, route: Route, *, path: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> bytes:
    """The request head for the upstream. Headers in `extra` (a credential the proxy
    supplies) replace the client's of the same name."""
    lines = [head.method + b" " + path.encode("latin-1") + b" HTTP/1.1"]
    forwarded_for = head.client.encode()
    replaced = {name.lower() for name, _ in extra} if extra else ()
    for name, value in head.headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or (head.chunked and lower == b"content-length"):
            continue
        if lower in replaced:
            continue
        if lower == b"cookie":
            value = strip_cookies(value)
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
    lines.extend(name + b": " + value for name, value in extra)
    if head.upgrade:
        lines.append(b"Connection: Upgrade")
        lines.append(b"Upgrade: " + (head.get(b"upgrade") or b"websocket"))
    elif head.chunked:
        lines.append(b"Transfer-Encoding: chunked")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def client_response(
    status: int,
    reason: bytes,
    headers: Headers,
    route: Route,
    *,
    upstream_origin: str,
    chunked: bool,
    sandbox: bool,
) -> bytes:
    lines = [b"HTTP/1.1 %d " % status + (reason or REASONS.get(status, "").encode())]
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP and status != 101:
            continue
        if lower == b"set-cookie":
            if _cookie_name(value) in PROTECTED_COOKIES:
                continue
        elif lower == b"location" and 300 <= status < 400:
            value = rewrite_location(value.decode("latin-1"), route, upstream_origin).encode(
                "latin-1"
            )
        lines.append(name + b": " + value)
    if status == 101:
        pass
    elif chunked:
        lines.append(b"Transfer-Encoding: chunked")
    if sandbox:
        lines.append(b"Content-Security-Policy: sandbox")
        lines.append(b"X-Content-Type-Options: nosniff")
    return b"\r\n".join(lines) + b"\r\n\r\n"


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
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


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
