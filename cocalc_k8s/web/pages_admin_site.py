"""/admin forms for the whole site: its name and sign-up mode, sign-up tokens (shown once
when created), and the default quotas of projects."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest, DomainError
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.keys import SIGNUP_TOKENS, SITE_SETTINGS
from cocalc_k8s.web.pages_admin import (
    QUOTA_LABELS,
    act,
    admin_or_404,
    admin_page,
    form_of,
    quota_from_form,
)


async def site_submit(request: web.Request) -> web.Response:
    async def action(principal: Principal, form: dict[str, str]) -> str:
        values = {k: form[k] for k in ("site_name", "sign_up") if k in form}
        await request.app[SITE_SETTINGS].change(principal.account_id, values)
        return "site"

    return await act(request, action)


async def quotas_submit(request: web.Request) -> web.Response:
    async def action(principal: Principal, form: dict[str, str]) -> str:
        values = quota_from_form(form, tuple(QUOTA_LABELS))
        await request.app[SITE_SETTINGS].change_default_quotas(principal.account_id, values)
        return "quotas"

    return await act(request, action)


def _whole(form: dict[str, str], name: str, label: str) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise BadRequest(f"{label} must be a whole number")
    return int(raw)


async def token_create_submit(request: web.Request) -> web.Response:
    """Shows the page with the new token: the one time it is ever shown."""
    principal = admin_or_404(request)
    form = await form_of(request)
    try:
        created = await request.app[SIGNUP_TOKENS].create(
            principal.account_id,
            description=form.get("description"),
            max_uses=_whole(form, "max_uses", "Maximum uses"),
            expires_days=_whole(form, "expires_days", "Expires in (days)"),
        )
    except DomainError as exc:
        return await admin_page(request, error=exc.message, status=exc.status)
    return await admin_page(request, new_token=created)


async def token_revoke_submit(request: web.Request) -> web.Response:
    async def action(principal: Principal, form: dict[str, str]) -> str:
        await request.app[SIGNUP_TOKENS].revoke(principal.account_id, request.match_info["prefix"])
        return "revoked"

    return await act(request, action)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.post("/admin/site", site_submit),
        web.post("/admin/quotas", quotas_submit),
        web.post("/admin/signup-tokens", token_create_submit),
        web.post("/admin/signup-tokens/{prefix}/revoke", token_revoke_submit),
    ]
