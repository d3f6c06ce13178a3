"""/api/v2/admin: site-wide stats, accounts, projects and settings, for admins only."""

from __future__ import annotations

import uuid

from aiohttp import web

from cocalc_k8s.core.errors import NotFound
from cocalc_k8s.keys import ADMIN, SITE_SETTINGS
from cocalc_k8s.web.auth import require_admin
from cocalc_k8s.web.jsonio import json_response, read_json


async def get_default_quotas(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(await request.app[SITE_SETTINGS].default_quotas())


async def put_default_quotas(request: web.Request) -> web.Response:
    admin = require_admin(request)
    body = await read_json(request)
    changed = await request.app[SITE_SETTINGS].change_default_quotas(admin.account_id, body)
    return json_response(changed)


async def stats(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(await request.app[ADMIN].stats())


async def accounts(request: web.Request) -> web.Response:
    require_admin(request)
    found = await request.app[ADMIN].accounts(request.query.get("search", "")[:200])
    return json_response({"accounts": found})


async def projects(request: web.Request) -> web.Response:
    require_admin(request)
    found = await request.app[ADMIN].projects(
        request.query.get("search", "")[:200], request.query.get("state", "")[:16]
    )
    return json_response({"projects": found})


async def set_admin(request: web.Request) -> web.Response:
    admin = require_admin(request)
    try:
        account_id = uuid.UUID(request.match_info["account_id"])
    except ValueError:
        raise NotFound("no such account") from None
    body = await read_json(request)
    await request.app[ADMIN].set_admin(admin.account_id, account_id, body.get("is_admin"))
    return web.Response(status=204)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/api/v2/admin/stats", stats),
        web.get("/api/v2/admin/accounts", accounts),
        web.patch("/api/v2/admin/accounts/{account_id}", set_admin),
        web.get("/api/v2/admin/projects", projects),
        web.get("/api/v2/admin/default-quotas", get_default_quotas),
        web.patch("/api/v2/admin/default-quotas", put_default_quotas),
    ]
