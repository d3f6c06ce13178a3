"""GET/PATCH /api/v2/account and the API key endpoints."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.core.tokens import token_hash
from cocalc_k8s.keys import ACCOUNTS, API_KEYS
from cocalc_k8s.web.auth import require_account
from cocalc_k8s.web.jsonio import json_response, read_json


async def get_account(request: web.Request) -> web.Response:
    principal = require_account(request)
    return json_response(
        {
            "account_id": str(principal.account_id),
            "email": principal.email,
            "name": principal.name,
            "is_admin": principal.is_admin,
        }
    )


async def patch_account(request: web.Request) -> web.Response:
    """{"name"} changes the display name; {"password", "new_password"} the password."""
    principal = require_account(request)
    body = await read_json(request)
    accounts = request.app[ACCOUNTS]
    if "new_password" in body:
        keep = token_hash(principal.credential) if principal.via == "session" else b""
        await accounts.change_password(
            principal.account_id,
            current=body.get("password"),
            new=body.get("new_password"),
            keep_session=keep,
        )
    if "name" in body:
        await accounts.set_name(principal.account_id, body.get("name"))
    account = await accounts.get(principal.account_id)
    return json_response({k: account[k] for k in ("account_id", "email", "name", "is_admin")})


async def create_api_key(request: web.Request) -> web.Response:
    principal = require_account(request)
    body = await read_json(request)
    created = await request.app[API_KEYS].create(principal.account_id, body.get("name"))
    return json_response(created, status=201)


async def list_api_keys(request: web.Request) -> web.Response:
    principal = require_account(request)
    keys = await request.app[API_KEYS].list(principal.account_id)
    return json_response({"api_keys": keys})


async def delete_api_key(request: web.Request) -> web.Response:
    principal = require_account(request)
    await request.app[API_KEYS].revoke(principal.account_id, request.match_info["key_id"])
    return web.Response(status=204)
