"""/admin: site stats, accounts (grant or remove admin rights), projects (stop), and the
default quotas. Plain forms, for admins only; everyone else gets a 404 page."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from cocalc_k8s.core.errors import DomainError
from cocalc_k8s.keys import ADMIN, LIFECYCLE, SITE_SETTINGS
from cocalc_k8s.web.auth import principal_of
from cocalc_k8s.web.templating import render, see_other

QUOTA_FIELDS = ("memory_mb", "cpu", "disk_mb", "idle_timeout", "cpu_oc", "mem_oc")


def _admin_or_404(request: web.Request) -> Any:
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/sign-in?next=/admin")
    if not principal.is_admin:
        raise web.HTTPNotFound()
    return principal


async def admin_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.Response:
    _admin_or_404(request)
    search = request.query.get("search", "")[:200]
    service = request.app[ADMIN]
    return render(
        request,
        "admin.html",
        status=status,
        page="admin",
        stats=await service.stats(),
        accounts=await service.accounts(search),
        projects=await service.projects(search),
        quotas=await request.app[SITE_SETTINGS].default_quotas(),
        quota_fields=QUOTA_FIELDS,
        search=search,
        error=error,
        message={"quotas": "Default quotas saved.", "admin": "Admin rights changed.",
                 "stop": "Stop requested."}.get(request.query.get("done", "")),
    )  # fmt: skip


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def set_admin_submit(request: web.Request) -> web.Response:
    principal = _admin_or_404(request)
    form = await _form(request)
    try:
        account_id = uuid.UUID(request.match_info["account_id"])
        await request.app[ADMIN].set_admin(
            principal.account_id, account_id, form.get("is_admin") == "true"
        )
    except (DomainError, ValueError) as exc:
        message = exc.message if isinstance(exc, DomainError) else "no such account"
        return await admin_page(request, error=message, status=400)
    return see_other("/admin?done=admin")


async def stop_project_submit(request: web.Request) -> web.Response:
    _admin_or_404(request)
    try:
        project_id = uuid.UUID(request.match_info["project_id"])
    except ValueError:
        return await admin_page(request, error="no such project", status=404)
    await request.app[LIFECYCLE].request(project_id, "stop")
    return see_other("/admin?done=stop")


async def quotas_submit(request: web.Request) -> web.Response:
    principal = _admin_or_404(request)
    form = await _form(request)
    values: dict[str, Any] = {}
    try:
        for name in QUOTA_FIELDS:
            if form.get(name, "").strip():
                values[name] = (
                    float(form[name]) if name in ("cpu", "cpu_oc", "mem_oc") else int(form[name])
                )
        await request.app[SITE_SETTINGS].change_default_quotas(principal.account_id, values)
    except ValueError:
        return await admin_page(request, error="quotas must be numbers", status=400)
    except DomainError as exc:
        return await admin_page(request, error=exc.message, status=exc.status)
    return see_other("/admin?done=quotas")


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/admin", admin_page),
        web.post("/admin/accounts/{account_id}/admin", set_admin_submit),
        web.post("/admin/projects/{project_id}/stop", stop_project_submit),
        web.post("/admin/quotas", quotas_submit),
    ]
