"""Who is asking. One middleware identifies the principal; handlers state what they need.

A request is authenticated by `Authorization: Bearer <api key>` or by the session cookie.
A present but invalid bearer key is an error (401), never a silent fall-back to the cookie.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from cocalc_k8s.core.errors import Forbidden, Unauthorized
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.keys import API_KEYS, SESSIONS, SETTINGS

SESSION_COOKIE = "cocalc_session"
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
    cookie = request.cookies.get(SESSION_COOKIE)
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


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        path="/",
        httponly=True,
        samesite="Lax",
        # Secure whenever the browser can reach us over HTTPS: our own TLS, or a
        # TLS-terminating proxy named by base_url.
        secure=settings.scheme == "https" or settings.public_url.startswith("https:"),
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
