"""Who is asking. One middleware identifies the principal; handlers state what they need.

A request is authenticated by `Authorization: Bearer <api key>` or by the session cookie.
A present but invalid bearer key is an error (401), never a silent fall-back to the cookie.

The session cookie is host-only (no Domain) and, whenever browsers reach the hub over
HTTPS, named `__Host-cocalc_session`: a browser takes a cookie of that name only from the
hub's own host, Secure, with Path=/ and no Domain, so a page on another host (a project's
origin under a parent domain of the hub, say) can neither set nor shadow it ("cookie
tossing"), and the CSRF token, derived from the session, stays out of its reach too.
Plain HTTP allows no prefix: the name is then `cocalc_session`, and the hub's loopback
host is one that project hosts (`*.localhost`) cannot set cookies for. A hub moved to
HTTPS ignores the unprefixed cookie (tossed or not): its users sign in once more.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from cocalc_k8s.core.errors import Forbidden, Unauthorized
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.keys import API_KEYS, SESSIONS, SETTINGS

SESSION_COOKIE = "cocalc_session"
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
# time.monotonic() before the credential was looked up: a long-lived connection registers
# with it, so a revocation that arrived since is not missed (services/live_connections).
AUTHENTICATED_AT: web.RequestKey[float] = web.RequestKey("authenticated_at")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <API key>'")
    return token.strip()


async def lookup_principal(request: web.Request) -> Principal | None:
    """Who the request's credential names now (None without one, or when it ended). Also
    how long-lived connections re-check the request that opened them."""
    key = bearer_token(request)
    if key is not None:
        return await request.app[API_KEYS].principal(key)
    cookie = session_token(request)
    return await request.app[SESSIONS].principal(cookie) if cookie else None


@web.middleware
async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[AUTHENTICATED_AT] = time.monotonic()
    principal = await lookup_principal(request)
    if principal is None and bearer_token(request) is not None:
        raise Unauthorized("invalid API key (revoked, or its account is banned)")
    request[PRINCIPAL] = principal
    return await handler(request)


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def authenticated_at(request: web.Request) -> float:
    return request[AUTHENTICATED_AT]


def require_account(request: web.Request) -> Principal:
    principal = principal_of(request)
    if principal is None:
        raise Unauthorized("sign in or use an API key")
    return principal


def require_admin(request: web.Request) -> Principal:
    principal = require_account(request)
    if not principal.is_admin:
        raise Forbidden("admins only")
    return principal


def _https(request: web.Request) -> bool:
    """Whether browsers reach us over HTTPS: our own TLS, or a TLS-terminating proxy named
    by base_url."""
    settings = request.app[SETTINGS]
    return settings.scheme == "https" or settings.public_url.startswith("https:")


def session_cookie_name(request: web.Request) -> str:
    return SECURE_SESSION_COOKIE if _https(request) else SESSION_COOKIE


def session_token(request: web.Request) -> str | None:
    """The session cookie's value, by this hub's cookie name only."""
    return request.cookies.get(session_cookie_name(request))


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    settings = request.app[SETTINGS]
    name = session_cookie_name(request)
    response.set_cookie(
        name,
        token,
        max_age=settings.session_days * 86400,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=name == SECURE_SESSION_COOKIE,
    )
    if name != SESSION_COOKIE and SESSION_COOKIE in request.cookies:
        response.del_cookie(SESSION_COOKIE, path="/")  # left by an HTTP hub, never read


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    name = session_cookie_name(request)
    response.del_cookie(name, path="/", secure=name == SECURE_SESSION_COOKIE)
