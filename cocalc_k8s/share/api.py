"""The publishing API (collaborators), URL names (account and project owners) and the
admin's share switches. JSON in and out; errors through the hub's error middleware.

    POST   /api/v2/projects/{project_id}/public-paths        -> 201 {"id", "url", ...}
    GET    /api/v2/projects/{project_id}/public-paths        -> {"public_paths": [...]}
    PATCH  /api/v2/projects/{project_id}/public-paths/{id}   -> the item
    DELETE /api/v2/projects/{project_id}/public-paths/{id}   -> 204
    GET|PUT /api/v2/account/username {"username"}            -> {"username"}
    GET|PUT /api/v2/projects/{project_id}/url-name {"name"}  -> {"name"}
    GET|PATCH /api/v2/admin/share {"enabled"}                -> {"enabled"}
    DELETE /api/v2/admin/public-paths/{id}                   -> 204
"""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.services.sharing import as_json, validate_fields
from cocalc_k8s.share.keys import PUBLISHED, SHARING, URL_NAMES
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.auth import require_account, require_admin
from cocalc_k8s.web.jsonio import json_response, read_json


async def publish(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    clean = validate_fields(body, creating=True)  # 400 before anything else
    await request.app[PUBLISHED].kind_of_path(access.project_id, clean["path"])
    item = await request.app[SHARING].publish(access.principal, access.project_id, body)
    return json_response(as_json(item), status=201)


async def list_public_paths(request: web.Request) -> web.Response:
    access = await project_access(request)
    items = await request.app[SHARING].for_project(access.principal, access.project_id)
    return json_response({"public_paths": [as_json(item) for item in items]})


async def edit(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    clean = validate_fields(body, creating=False)
    if "path" in clean:
        await request.app[PUBLISHED].kind_of_path(access.project_id, clean["path"])
    item = await request.app[SHARING].edit(
        access.principal, access.project_id, request.match_info["share_id"], body
    )
    return json_response(as_json(item))


async def unpublish(request: web.Request) -> web.Response:
    access = await project_access(request)
    await request.app[SHARING].unpublish(
        access.principal, access.project_id, request.match_info["share_id"]
    )
    return web.Response(status=204)


async def get_username(request: web.Request) -> web.Response:
    principal = require_account(request)
    return json_response({"username": await request.app[URL_NAMES].username(principal.account_id)})


async def put_username(request: web.Request) -> web.Response:
    principal = require_account(request)
    body = await read_json(request)
    username = await request.app[URL_NAMES].set_username(principal, body.get("username"))
    return json_response({"username": username})


async def get_project_name(request: web.Request) -> web.Response:
    access = await project_access(request)
    return json_response({"name": await request.app[URL_NAMES].project_name(access.project_id)})


async def put_project_name(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    name = await request.app[URL_NAMES].set_project_name(
        access.principal, access.project_id, body.get("name")
    )
    return json_response({"name": name})


async def get_site_share(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response({"enabled": await request.app[SHARING].enabled()})


async def patch_site_share(request: web.Request) -> web.Response:
    admin = require_admin(request)
    body = await read_json(request)
    enabled = await request.app[SHARING].set_enabled(admin.account_id, body.get("enabled"))
    return json_response({"enabled": enabled})


async def admin_unpublish(request: web.Request) -> web.Response:
    admin = require_admin(request)
    await request.app[SHARING].admin_unpublish(admin.account_id, request.match_info["share_id"])
    return web.Response(status=204)


def routes() -> list[web.AbstractRouteDef]:
    base = "/api/v2/projects/{project_id}"
    return [
        web.post(base + "/public-paths", publish),
        web.get(base + "/public-paths", list_public_paths),
        web.patch(base + "/public-paths/{share_id}", edit),
        web.delete(base + "/public-paths/{share_id}", unpublish),
        web.get(base + "/url-name", get_project_name),
        web.put(base + "/url-name", put_project_name),
        web.get("/api/v2/account/username", get_username),
        web.put("/api/v2/account/username", put_username),
        web.get("/api/v2/admin/share", get_site_share),
        web.patch("/api/v2/admin/share", patch_site_share),
        web.delete("/api/v2/admin/public-paths/{share_id}", admin_unpublish),
    ]
