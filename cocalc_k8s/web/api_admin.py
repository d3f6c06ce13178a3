"""/api/v2/admin: site-wide settings, for admins only."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.keys import SITE_SETTINGS
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


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/api/v2/admin/default-quotas", get_default_quotas),
        web.patch("/api/v2/admin/default-quotas", put_default_quotas),
    ]
