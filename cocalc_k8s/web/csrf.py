"""Cross-site request forgery protection for cookie-authenticated requests.

A state-changing request (not GET/HEAD/OPTIONS) that carries the session cookie must
either come from the hub's own origin (scheme, host and port in the Origin header) or
carry the session's CSRF token (X-CSRF-Token header or a `csrf_token` form field).
Requests authenticated with a bearer API key carry no ambient credential and are exempt.
Without a session cookie, a browser's foreign Origin is still refused (login CSRF).
A cookie-authenticated WebSocket handshake (a GET) must come from the hub's own origin.
"""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.core.errors import Forbidden
from cocalc_k8s.core.tokens import csrf_token, tokens_equal
from cocalc_k8s.keys import SECRET_KEY, SETTINGS
from cocalc_k8s.web.auth import Handler, session_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def token_for(request: web.Request) -> str:
    """The CSRF token of the request's session ('' without a session)."""
    session = session_token(request)
    return csrf_token(request.app[SECRET_KEY], session) if session else ""


def trusted_origins(request: web.Request) -> set[str]:
    own = f"{request.scheme}://{request.host}"
    return {own.lower(), request.app[SETTINGS].public_url.lower()}


async def _submitted_token(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


@web.middleware
async def csrf_protect(request: web.Request, handler: Handler) -> web.StreamResponse:
    if "Authorization" in request.headers:
        return await handler(request)
    if _is_websocket(request) and session_token(request) is not None:
        # Cross-site WebSocket hijacking: browsers send the cookie with any page's
        # WebSocket, but always send its Origin too.
        ws_origin = request.headers.get("Origin", "")
        if ws_origin.lower() not in trusted_origins(request):
            raise Forbidden("cross-origin WebSocket refused")
        return await handler(request)
    if request.method in SAFE_METHODS:
        return await handler(request)
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null":
        if origin.lower() not in trusted_origins(request):
            raise Forbidden("cross-origin request refused")
        return await handler(request)
    session = session_token(request)
    if session:
        submitted = await _submitted_token(request)
        if not submitted or not tokens_equal(submitted, token_for(request)):
            raise Forbidden("missing or wrong CSRF token; reload the page and try again")
    elif origin == "null":
        raise Forbidden("cross-origin request refused")
    return await handler(request)
