"""POST /api/v2/auth/sign-up | sign-in | sign-out.

Sign-up takes `token` while the site's sign-up is "by token"; it is 403 while closed.
Sign-in of a banned account is 403 with a message (after the right password only)."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.core.tokens import csrf_token
from cocalc_k8s.keys import ACCOUNTS, SECRET_KEY, SESSIONS
from cocalc_k8s.web.auth import clear_session_cookie, session_token, set_session_cookie
from cocalc_k8s.web.jsonio import json_response, read_json


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


async def open_session(request: web.Request, account_id: object, *, status: int) -> web.Response:
    token = await request.app[SESSIONS].create(
        account_id,  # type: ignore[arg-type]
        ip=client_address(request),
        user_agent=request.headers.get("User-Agent"),
    )
    response = json_response(
        {
            "account_id": str(account_id),
            "csrf_token": csrf_token(request.app[SECRET_KEY], token),
        },
        status=status,
    )
    set_session_cookie(request, response, token)
    return response


async def sign_up(request: web.Request) -> web.Response:
    body = await read_json(request)
    account_id = await request.app[ACCOUNTS].sign_up(
        email=body.get("email"),
        password=body.get("password"),
        name=body.get("name"),
        token=body.get("token"),
    )
    return await open_session(request, account_id, status=201)


async def sign_in(request: web.Request) -> web.Response:
    body = await read_json(request)
    account_id = await request.app[ACCOUNTS].authenticate(
        email=body.get("email"), password=body.get("password"), address=client_address(request)
    )
    return await open_session(request, account_id, status=200)


async def sign_out(request: web.Request) -> web.Response:
    token = session_token(request)
    if token:
        await request.app[SESSIONS].revoke(token)
    response = web.Response(status=204)
    clear_session_cookie(request, response)
    return response
