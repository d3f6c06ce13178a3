"""Server-rendered pages: landing, sign up, sign in, account settings (and, from
`pages_projects`, the project pages).

Plain HTML forms that work without JavaScript; every POST is CSRF-checked by the
middleware, and failures re-render the form with the message and the user's input.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cocalc_k8s.core.errors import DomainError
from cocalc_k8s.core.redirect_targets import local_target
from cocalc_k8s.core.tokens import token_hash
from cocalc_k8s.keys import ACCOUNTS, API_KEYS, SESSIONS, SITE_SETTINGS, SSH_KEYS
from cocalc_k8s.web import pages_admin, pages_admin_site, pages_projects
from cocalc_k8s.web.api_auth import client_address
from cocalc_k8s.web.api_ssh_keys import ssh_info
from cocalc_k8s.web.auth import (
    clear_session_cookie,
    principal_of,
    session_token,
    set_session_cookie,
)
from cocalc_k8s.web.templating import render, see_other


def safe_next(value: Any) -> str:
    """Only paths on the hub's origin ('/account'), never '//evil.example', 'https://…' or
    '/\\t/evil.example' (see core.redirect_targets); anything else becomes '/'."""
    return local_target(value) or "/"


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def landing(request: web.Request) -> web.Response:
    return render(request, "index.html", page="home")


async def sign_up_page(request: web.Request) -> web.Response:
    if principal_of(request):
        raise web.HTTPSeeOther("/account")
    return _sign_up_form(request, form={}, next_path=safe_next(request.query.get("next")))


def _sign_up_form(
    request: web.Request,
    *,
    form: dict[str, str],
    next_path: str,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    """The form as the site's sign-up mode wants it: open, by token, or closed."""
    return render(
        request,
        "sign_up.html",
        status=status,
        page="sign-up",
        form={k: v for k, v in form.items() if k != "password"},
        error=error,
        next=next_path,
        mode=request.app[SITE_SETTINGS].current.sign_up,
    )


async def sign_up_submit(request: web.Request) -> web.Response:
    form = await _form(request)
    target = safe_next(form.get("next"))
    try:
        account_id = await request.app[ACCOUNTS].sign_up(
            email=form.get("email"),
            password=form.get("password"),
            name=form.get("name"),
            token=form.get("token"),
        )
    except DomainError as exc:
        return _sign_up_form(
            request, form=form, next_path=target, error=exc.message, status=exc.status
        )
    return await _signed_in_redirect(request, account_id, target)


async def sign_in_page(request: web.Request) -> web.Response:
    next_path = safe_next(request.query.get("next"))
    if principal_of(request):
        raise web.HTTPSeeOther(next_path)
    return render(request, "sign_in.html", page="sign-in", form={}, error=None, next=next_path)


async def sign_in_submit(request: web.Request) -> web.Response:
    form = await _form(request)
    target = safe_next(form.get("next"))
    try:
        account_id = await request.app[ACCOUNTS].authenticate(
            email=form.get("email"),
            password=form.get("password"),
            address=client_address(request),
        )
    except DomainError as exc:
        response = render(
            request,
            "sign_in.html",
            status=exc.status,
            page="sign-in",
            form={"email": form.get("email", "")},
            error=exc.message,
            next=target,
        )
        if exc.status == 429:
            response.headers["Retry-After"] = str(getattr(exc, "retry_after", 60))
        return response
    return await _signed_in_redirect(request, account_id, target)


async def _signed_in_redirect(request: web.Request, account_id: Any, target: str) -> web.Response:
    token = await request.app[SESSIONS].create(
        account_id, ip=client_address(request), user_agent=request.headers.get("User-Agent")
    )
    response = see_other(target)
    set_session_cookie(request, response, token)
    return response


async def sign_out_submit(request: web.Request) -> web.Response:
    token = session_token(request)
    if token:
        await request.app[SESSIONS].revoke(token)
    response = see_other("/")
    clear_session_cookie(request, response)
    return response


async def _account_page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/sign-in?next=/account")
    context.setdefault("message", _MESSAGES.get(request.query.get("done", "")))
    context.setdefault("error", None)
    context.setdefault("new_key", None)
    keys = await request.app[API_KEYS].list(principal.account_id)
    context.setdefault("ssh_form", {})
    ssh_keys = await request.app[SSH_KEYS].list_account(principal.account_id)
    return render(
        request,
        "account.html",
        status=status,
        page="account",
        keys=keys,
        ssh_keys=ssh_keys,
        ssh=ssh_info(request.app),
        **context,
    )


_MESSAGES = {
    "name": "Your name was saved.",
    "password": "Your password was changed. Other sessions were signed out.",
    "revoked": "The API key was revoked.",
    "ssh-added": "The SSH key was added.",
    "ssh-deleted": "The SSH key was deleted. Sessions it opened were closed.",
}


async def account_page(request: web.Request) -> web.Response:
    return await _account_page(request)


async def _account_action(request: web.Request, action: Any, done: str) -> web.Response:
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/sign-in?next=/account")
    try:
        await action(principal, await _form(request))
    except DomainError as exc:
        return await _account_page(request, status=exc.status, error=exc.message)
    raise web.HTTPSeeOther(f"/account?done={done}")


async def account_name_submit(request: web.Request) -> web.Response:
    async def action(principal: Any, form: dict[str, str]) -> None:
        await request.app[ACCOUNTS].set_name(principal.account_id, form.get("name"))

    return await _account_action(request, action, "name")


async def account_password_submit(request: web.Request) -> web.Response:
    async def action(principal: Any, form: dict[str, str]) -> None:
        await request.app[ACCOUNTS].change_password(
            principal.account_id,
            current=form.get("password"),
            new=form.get("new_password"),
            keep_session=token_hash(principal.credential),
        )

    return await _account_action(request, action, "password")


async def api_key_create_submit(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/sign-in?next=/account")
    form = await _form(request)
    try:
        created = await request.app[API_KEYS].create(principal.account_id, form.get("name"))
    except DomainError as exc:
        return await _account_page(request, status=exc.status, error=exc.message)
    # Shown in this one response only; it is stored hashed.
    return await _account_page(request, new_key=created)


async def api_key_revoke_submit(request: web.Request) -> web.Response:
    async def action(principal: Any, form: dict[str, str]) -> None:
        await request.app[API_KEYS].revoke(principal.account_id, request.match_info["key_id"])

    return await _account_action(request, action, "revoked")


async def ssh_key_add_submit(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/sign-in?next=/account")
    form = await _form(request)
    try:
        await request.app[SSH_KEYS].add(
            principal.account_id, name=form.get("name"), public_key=form.get("public_key")
        )
    except DomainError as exc:  # the form comes back with what was pasted
        return await _account_page(request, status=exc.status, error=exc.message, ssh_form=form)
    raise web.HTTPSeeOther("/account?done=ssh-added#ssh-keys-heading")


async def ssh_key_delete_submit(request: web.Request) -> web.Response:
    async def action(principal: Any, form: dict[str, str]) -> None:
        await request.app[SSH_KEYS].delete(principal.account_id, request.match_info["key_id"])

    return await _account_action(request, action, "ssh-deleted")


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", landing),
        web.get("/sign-up", sign_up_page),
        web.post("/sign-up", sign_up_submit),
        web.get("/sign-in", sign_in_page),
        web.post("/sign-in", sign_in_submit),
        web.post("/sign-out", sign_out_submit),
        web.get("/account", account_page),
        web.post("/account/name", account_name_submit),
        web.post("/account/password", account_password_submit),
        web.post("/account/api-keys", api_key_create_submit),
        web.post("/account/api-keys/{key_id}/revoke", api_key_revoke_submit),
        web.post("/account/ssh-keys", ssh_key_add_submit),
        web.post("/account/ssh-keys/{key_id}/delete", ssh_key_delete_submit),
        *pages_projects.routes(),
        *pages_admin.routes(),
        *pages_admin_site.routes(),
    ]
