"""The one error middleware: domain errors and HTTP errors become a clear answer,
`{"error": message}` for the API and a small page for browsers. Never a traceback."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from cocalc_k8s.core.errors import DomainError, RateLimited
from cocalc_k8s.keys import TEMPLATES
from cocalc_k8s.web.auth import Handler
from cocalc_k8s.web.templating import render

log = logging.getLogger(__name__)

_REASONS = {
    400: "bad request",
    401: "sign in required",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    429: "too many requests",
    500: "internal error",
}


def wants_json(request: web.Request) -> bool:
    return (
        request.path.startswith("/api/")
        or "application/json" in request.headers.get("Accept", "")
        or request.content_type == "application/json"
    )


def error_response(request: web.Request, status: int, message: str) -> web.Response:
    if wants_json(request):
        return web.Response(
            status=status,
            text=json.dumps({"error": message}),
            content_type="application/json",
        )
    if TEMPLATES in request.app:
        try:
            return render(
                request, "error.html", status=status, page="error", code=status, message=message
            )
        except Exception:
            log.exception("cannot render the error page")
    return web.Response(status=status, text=message)


@web.middleware
async def handle_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        response = error_response(request, exc.status, exc.message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _REASONS.get(exc.status, exc.reason.lower())
        if exc.status == 413:
            message = "request body too large"
        response = error_response(request, exc.status, message)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(request, 500, "internal error; the details are in the hub's log")
