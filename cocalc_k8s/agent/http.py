"""HTTP plumbing shared by the agent's handlers: the error and token middlewares, JSON bodies."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest, DomainError

log = logging.getLogger("cocalc_k8s.agent")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and aiohttp's own HTTP errors as JSON; anything else is a logged 500."""
    try:
        return await handler(request)
    except DomainError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason)
        for header, value in exc.headers.items():  # Allow, WWW-Authenticate, Content-Range
            if header not in ("Content-Type", "Content-Length"):
                response.headers[header] = value
        return response
    except Exception:
        log.exception("error in %s %s", request.method, request.path)
        return error_response(500, "internal error in the project agent")


def auth_middleware(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            raise web.HTTPUnauthorized(
                reason="a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        return await handler(request)

    return authenticate


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body
