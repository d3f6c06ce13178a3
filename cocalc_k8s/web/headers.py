"""Security headers on every response of the hub's own origin."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.keys import SETTINGS
from cocalc_k8s.web.auth import Handler

# connect-src 'self' also admits WebSockets to the page's own host (ws: for http, wss:
# for https; CSP Level 3, in every current browser): the realtime channel's socket needs
# nothing more.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    elif request.path.startswith("/static/") and response.status == 200:
        # Versioned URLs (static_url) change with the content: cache them for good.
        versioned = "v" in request.query
        headers.setdefault(
            "Cache-Control", "public, max-age=31536000, immutable" if versioned else "no-cache"
        )
    if request.app[SETTINGS].scheme == "https":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
