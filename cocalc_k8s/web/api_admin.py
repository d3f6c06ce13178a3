"""/api/v2/admin: site-wide stats, accounts, projects and settings, for admins only."""

from __future__ import annotations

import uuid

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest, NotFound
from cocalc_k8s.keys import ADMIN, ISOLATION, LIFECYCLE, SIGNUP_TOKENS, SITE_SETTINGS
from cocalc_k8s.services.project_images import image_report, restart_outdated
from cocalc_k8s.services.site_settings import SiteConfig
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


def _site(request: web.Request, config: SiteConfig) -> web.Response:
    """The settings, with why sign-up is closed regardless (`sign_up_locked`, or null) and
    how projects are isolated (decided at start-up)."""
    isolation = request.app[ISOLATION]
    return json_response(
        {
            "site_name": config.site_name,
            "sign_up": config.sign_up,
            "sign_up_locked": config.sign_up_locked,
            "isolation": {
                "sandboxed": isolation.sandboxed,
                "trusted_users": isolation.trusted_users,
                "problem": isolation.problem,
                "summary": isolation.summary(),
            },
        }
    )


async def get_site_settings(request: web.Request) -> web.Response:
    require_admin(request)
    return _site(request, await request.app[SITE_SETTINGS].reload())


async def patch_site_settings(request: web.Request) -> web.Response:
    admin = require_admin(request)
    body = await read_json(request)
    return _site(request, await request.app[SITE_SETTINGS].change(admin.account_id, body))


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


async def patch_account(request: web.Request) -> web.Response:
    """`{"is_admin": bool}` and/or `{"banned": bool}`."""
    admin = require_admin(request)
    try:
        account_id = uuid.UUID(request.match_info["account_id"])
    except ValueError:
        raise NotFound("no such account") from None
    body = await read_json(request)
    await request.app[ADMIN].update_account(admin.account_id, account_id, body)
    return web.Response(status=204)


async def list_signup_tokens(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response({"tokens": await request.app[SIGNUP_TOKENS].list()})


async def create_signup_token(request: web.Request) -> web.Response:
    """`{"description"?, "max_uses"?, "expires_days"?}` → the token, shown this once."""
    admin = require_admin(request)
    body = await read_json(request)
    created = await request.app[SIGNUP_TOKENS].create(
        admin.account_id,
        description=body.get("description"),
        max_uses=body.get("max_uses"),
        expires_days=body.get("expires_days"),
    )
    return json_response(created, status=201)


async def revoke_signup_token(request: web.Request) -> web.Response:
    admin = require_admin(request)
    await request.app[SIGNUP_TOKENS].revoke(admin.account_id, request.match_info["prefix"])
    return web.Response(status=204)


async def project_images(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(image_report(request.app[LIFECYCLE]))


async def restart_project_images(request: web.Request) -> web.Response:
    """`{"tag"?: str}`: restart the running projects on an old image tag (that one only
    with `tag`); 202 `{"restarting": [project_id, ...]}`."""
    admin = require_admin(request)
    body = await read_json(request)
    tag = body.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise BadRequest("tag must be a string")
    chosen = await restart_outdated(request.app[LIFECYCLE], admin.account_id, tag=tag)
    return json_response({"restarting": [str(p) for p in chosen]}, status=202)


def routes() -> list[web.AbstractRouteDef]:
    base = "/api/v2/admin"
    return [
        web.get(base + "/stats", stats),
        web.get(base + "/accounts", accounts),
        web.patch(base + "/accounts/{account_id}", patch_account),
        web.get(base + "/projects", projects),
        web.get(base + "/project-images", project_images),
        web.post(base + "/project-images/restart", restart_project_images),
        web.get(base + "/default-quotas", get_default_quotas),
        web.patch(base + "/default-quotas", put_default_quotas),
        web.get(base + "/site-settings", get_site_settings),
        web.patch(base + "/site-settings", patch_site_settings),
        web.get(base + "/signup-tokens", list_signup_tokens),
        web.post(base + "/signup-tokens", create_signup_token),
        web.delete(base + "/signup-tokens/{prefix}", revoke_signup_token),
    ]
