"""Reading JSON request bodies and writing JSON answers."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest, PayloadTooLarge

MAX_JSON_BODY = 64 * 1024


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or BadRequest with a message saying what is wrong."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise PayloadTooLarge(f"request body larger than {MAX_JSON_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16384):
        size += len(chunk)
        if size > MAX_JSON_BODY:
            raise PayloadTooLarge(f"request body larger than {MAX_JSON_BODY} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data, default=_default),
        content_type="application/json",
    )
