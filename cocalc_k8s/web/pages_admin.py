"""/admin: live site stats, accounts (admin rights, bans), projects (stop, quota), project
image tags (restart those on an old one), and,
from `pages_admin_site`, the site settings, sign-up tokens and default quotas.
Plain forms, for admins only; everyone else gets a 404 page."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest, DomainError, NotFound
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.core.project_state import ProjectState
from cocalc_k8s.keys import (
    ADMIN,
    DISK_QUOTA,
    ISOLATION,
    LIFECYCLE,
    PROJECTS,
    SIGNUP_TOKENS,
    SITE_SETTINGS,
)
from cocalc_k8s.services.project_images import image_report, restart_outdated
from cocalc_k8s.web.auth import principal_of
from cocalc_k8s.web.templating import render, see_other

QUOTA_LABELS = {
    "memory_mb": "Memory (MB)",
    "cpu": "CPU (cores)",
    "disk_mb": "Disk (MB)",
    "idle_timeout": "Idle timeout (minutes)",
    "cpu_oc": "CPU over-commit",
    "mem_oc": "Memory over-commit",
}
PROJECT_QUOTA_FIELDS = ("memory_mb", "cpu", "disk_mb", "idle_timeout")
DONE = {
    "quotas": "Default quotas saved.",
    "admin": "Admin rights changed.",
    "banned": "The account was banned and signed out everywhere.",
    "unbanned": "The account may sign in again.",
    "stop": "Stop requested.",
    "project-quota": "The project's quota was saved.",
    "site": "Site settings saved.",
    "revoked": "The sign-up token was revoked.",
    "images": "Restarts requested for the projects on the old image.",
}
Action = Callable[[Principal, dict[str, str]], Awaitable[str]]


def admin_or_404(request: web.Request) -> Principal:
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/sign-in?next=/admin")
    if not principal.is_admin:
        raise web.HTTPNotFound()
    return principal


async def admin_page(
    request: web.Request, *, error: str | None = None, status: int = 200, **context: Any
) -> web.Response:
    admin_or_404(request)
    search = request.query.get("search", "")[:200]
    state = request.query.get("state", "")[:16]
    service = request.app[ADMIN]
    return render(
        request,
        "admin.html",
        status=status,
        page="admin",
        stats=await service.stats(),
        accounts=await service.accounts(search),
        projects=await service.projects(search, state),
        quotas=await request.app[SITE_SETTINGS].default_quotas(),
        quota_labels=QUOTA_LABELS,
        project_quota_fields=PROJECT_QUOTA_FIELDS,
        site=await request.app[SITE_SETTINGS].reload(),
        isolation=request.app[ISOLATION],
        disk_enforcement=request.app[DISK_QUOTA].enforcement,
        tokens=await request.app[SIGNUP_TOKENS].list(),
        images=image_report(request.app[LIFECYCLE]),
        states=[s.value for s in ProjectState],
        search=search,
        state=state,
        error=error,
        message=DONE.get(request.query.get("done", "")),
        new_token=context.pop("new_token", None),
    )


async def form_of(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def act(request: web.Request, action: Action) -> web.Response:
    """Run a form's action as the admin; redirect to the page with its message, or show
    the page again with the error."""
    principal = admin_or_404(request)
    try:
        done = await action(principal, await form_of(request))
    except DomainError as exc:
        return await admin_page(request, error=exc.message, status=exc.status)
    return see_other(f"/admin?done={done}")


def _id(request: web.Request, name: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound(f"no such {what}") from None


async def set_admin_submit(request: web.Request) -> web.Response:
    async def action(principal: Principal, form: dict[str, str]) -> str:
        account_id = _id(request, "account_id", "account")
        await request.app[ADMIN].set_admin(
            principal.account_id, account_id, form.get("is_admin") == "true"
        )
        return "admin"

    return await act(request, action)


async def set_banned_submit(request: web.Request) -> web.Response:
    async def action(principal: Principal, form: dict[str, str]) -> str:
        account_id = _id(request, "account_id", "account")
        banned = form.get("banned") == "true"
        await request.app[ADMIN].set_banned(principal.account_id, account_id, banned)
        return "banned" if banned else "unbanned"

    return await act(request, action)


async def stop_project_submit(request: web.Request) -> web.Response:
    async def action(principal: Principal, form: dict[str, str]) -> str:
        project_id = _id(request, "project_id", "project")
        await request.app[PROJECTS].access(principal, project_id)  # NotFound if gone
        await request.app[LIFECYCLE].request(project_id, "stop", account_id=principal.account_id)
        return "stop"

    return await act(request, action)


async def project_quota_submit(request: web.Request) -> web.Response:
    async def action(principal: Principal, form: dict[str, str]) -> str:
        project_id = _id(request, "project_id", "project")
        quota = quota_from_form(form, PROJECT_QUOTA_FIELDS)
        await request.app[PROJECTS].update(principal, project_id, {"quota": quota})
        return "project-quota"

    return await act(request, action)


async def restart_images_submit(request: web.Request) -> web.Response:
    async def action(principal: Principal, form: dict[str, str]) -> str:
        tag = form.get("tag") or None
        await restart_outdated(request.app[LIFECYCLE], principal.account_id, tag=tag)
        return "images"

    return await act(request, action)


def quota_from_form(form: dict[str, str], names: tuple[str, ...]) -> dict[str, Any]:
    """The filled-in fields as numbers (checked by the quota rules later); the idle
    timeout is given in minutes."""
    values: dict[str, Any] = {}
    for name in names:
        raw = form.get(name, "").strip()
        if not raw:
            continue
        try:
            number = float(raw)
        except ValueError:
            raise BadRequest(f"{QUOTA_LABELS[name]} must be a number") from None
        values[name] = round(number * 60) if name == "idle_timeout" else number
    return values


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/admin", admin_page),
        web.post("/admin/accounts/{account_id}/admin", set_admin_submit),
        web.post("/admin/accounts/{account_id}/ban", set_banned_submit),
        web.post("/admin/projects/{project_id}/stop", stop_project_submit),
        web.post("/admin/projects/{project_id}/quota", project_quota_submit),
        web.post("/admin/project-images/restart", restart_images_submit),
    ]
