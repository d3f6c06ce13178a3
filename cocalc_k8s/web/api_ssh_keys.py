"""The SSH key endpoints: an account's keys, and one project's (any collaborator).

    POST   /api/v2/ssh-keys                        {"name", "public_key"} → 201 the key
    GET    /api/v2/ssh-keys                        {"ssh_keys": [...], "ssh": {...}}
    DELETE /api/v2/ssh-keys/{key_id}               204
    POST   /api/v2/projects/{project_id}/ssh-keys  the same, for one project
    GET    /api/v2/projects/{project_id}/ssh-keys
    DELETE /api/v2/projects/{project_id}/ssh-keys/{key_id}

A key is ``{"id", "name", "fingerprint", "public_key", "created", "last_used"}`` (project
keys also ``"added_by": {"id", "name"}``); ``"ssh"`` says how to log in (`ssh_info`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from cocalc_k8s.keys import SETTINGS, SSH_HOST, SSH_KEYS
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.auth import require_account
from cocalc_k8s.web.jsonio import json_response, read_json


def ssh_info(app: web.Application) -> dict[str, Any]:
    """How to log in: ``{"port", "host_key_fingerprint", "host"}`` (port and fingerprint
    None while the SSH server is off); `host` is the hub's public host name."""
    endpoint = app.get(SSH_HOST)
    host = urlsplit(app[SETTINGS].public_url).hostname or "localhost"
    if endpoint is None:
        return {"port": None, "host_key_fingerprint": None, "host": host}
    return {"port": endpoint.port, "host_key_fingerprint": endpoint.fingerprint, "host": host}


async def create_account_key(request: web.Request) -> web.Response:
    principal = require_account(request)
    body = await read_json(request)
    key = await request.app[SSH_KEYS].add(
        principal.account_id, name=body.get("name"), public_key=body.get("public_key")
    )
    return json_response(key, status=201)


async def list_account_keys(request: web.Request) -> web.Response:
    principal = require_account(request)
    keys = await request.app[SSH_KEYS].list_account(principal.account_id)
    return json_response({"ssh_keys": keys, "ssh": ssh_info(request.app)})


async def delete_account_key(request: web.Request) -> web.Response:
    principal = require_account(request)
    await request.app[SSH_KEYS].delete(principal.account_id, request.match_info["key_id"])
    return web.Response(status=204)


async def create_project_key(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    key = await request.app[SSH_KEYS].add(
        access.principal.account_id,
        name=body.get("name"),
        public_key=body.get("public_key"),
        project_id=access.project_id,
    )
    return json_response(key, status=201)


async def list_project_keys(request: web.Request) -> web.Response:
    access = await project_access(request)
    keys = await request.app[SSH_KEYS].list_project(access.project_id)
    return json_response({"ssh_keys": keys, "ssh": ssh_info(request.app)})


async def delete_project_key(request: web.Request) -> web.Response:
    access = await project_access(request)
    await request.app[SSH_KEYS].delete(
        access.principal.account_id, request.match_info["key_id"], project_id=access.project_id
    )
    return web.Response(status=204)


def routes() -> list[web.AbstractRouteDef]:
    project = "/api/v2/projects/{project_id}/ssh-keys"
    return [
        web.post("/api/v2/ssh-keys", create_account_key),
        web.get("/api/v2/ssh-keys", list_account_keys),
        web.delete("/api/v2/ssh-keys/{key_id}", delete_account_key),
        web.post(project, create_project_key),
        web.get(project, list_project_keys),
        web.delete(project + "/{key_id}", delete_project_key),
    ]
