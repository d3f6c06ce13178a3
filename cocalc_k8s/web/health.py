"""/healthz (the process answers) and /readyz (the database answers)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from cocalc_k8s.keys import ENGINE


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(3):
            async with request.app[ENGINE].connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the reason is for the admin
        return web.json_response(
            {"status": "unavailable", "error": f"database: {type(exc).__name__}"}, status=503
        )
    return web.json_response({"status": "ok"})
