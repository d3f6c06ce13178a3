"""/api/v2/projects: create, list, read, edit, delete, and collaborators."""

from __future__ import annotations

import uuid

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest, NotFound
from cocalc_k8s.keys import LIFECYCLE, PROJECTS
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.auth import require_account
from cocalc_k8s.web.jsonio import json_response, read_json

_HIDDEN = {"false": False, "true": True, "all": None}


async def create_project(request: web.Request) -> web.Response:
    principal = require_account(request)
    body = await read_json(request)
    project_id = await request.app[PROJECTS].create(
        principal, title=body.get("title"), description=body.get("description", "")
    )
    return json_response({"project_id": project_id}, status=201)


async def list_projects(request: web.Request) -> web.Response:
    principal = require_account(request)
    hidden = request.query.get("hidden", "false")
    if hidden not in _HIDDEN:
        raise BadRequest("hidden must be true, false or all")
    projects = await request.app[PROJECTS].list(
        principal, search=request.query.get("search", "")[:200], hidden=_HIDDEN[hidden]
    )
    return json_response({"projects": projects})


async def get_project(request: web.Request) -> web.Response:
    access = await project_access(request)
    return json_response(await request.app[PROJECTS].get(access.principal, access.project_id))


async def patch_project(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    projects = request.app[PROJECTS]
    await projects.update(access.principal, access.project_id, body)
    return json_response(await projects.get(access.principal, access.project_id))


async def delete_project(request: web.Request) -> web.Response:
    access = await project_access(request)
    await request.app[PROJECTS].delete(access.principal, access.project_id)
    await request.app[LIFECYCLE].request(
        access.project_id,
        "stop",
        account_id=access.principal.account_id,
        reason="the project was deleted",
    )
    return web.Response(status=204)


async def add_collaborator(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    account_id = await request.app[PROJECTS].add_collaborator(
        access.principal, access.project_id, body.get("email")
    )
    return json_response({"account_id": account_id}, status=201)


async def remove_collaborator(request: web.Request) -> web.Response:
    access = await project_access(request)
    try:
        account_id = uuid.UUID(request.match_info["account_id"])
    except ValueError:
        raise NotFound("that account is not a collaborator") from None
    await request.app[PROJECTS].remove_collaborator(access.principal, access.project_id, account_id)
    return web.Response(status=204)


def routes() -> list[web.AbstractRouteDef]:
    base = "/api/v2/projects/{project_id}"
    return [
        web.post("/api/v2/projects", create_project),
        web.get("/api/v2/projects", list_projects),
        web.get(base, get_project),
        web.patch(base, patch_project),
        web.delete(base, delete_project),
        web.post(base + "/collaborators", add_collaborator),
        web.delete(base + "/collaborators/{account_id}", remove_collaborator),
    ]
