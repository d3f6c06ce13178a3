"""Project pages: the list of one's projects and a project's own page.

The list works without JavaScript (a GET form filters it, a POST form creates a
project); `static/projects.js` makes it live. The project page renders its header and
tab bar on the server; each tab is a JS module (`static/project-*.js`) loaded only when
that tab is shown. Tabs have real URLs (`/projects/{id}/files/dir`,
`/projects/{id}/edit/notes.md`, `/projects/{id}/terminal`, `/projects/{id}/settings`)
so that reload and the back button keep the user where they were.

Access follows the API: anonymous visitors are sent to sign in, and anyone who may not
use the project gets the same 404 as for a project that does not exist.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from cocalc_k8s.core.errors import DomainError, NotFound
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.keys import CONTENT_ORIGINS, PROJECTS, SERVER_REPORTS
from cocalc_k8s.services.projects import parse_project_id
from cocalc_k8s.web.auth import principal_of
from cocalc_k8s.web.templating import render

TABS = ("files", "edit", "terminal", "settings")
_HIDDEN = {"": False, "false": False, "true": True, "all": None}


def relative_time(when: datetime | None, now: datetime) -> str:
    """'just now', '5 minutes ago', '3 days ago', or the date for anything older."""
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    if seconds < 45:
        return "just now"
    for limit, unit, size in (
        (3600, "minute", 60),
        (86400, "hour", 3600),
        (30 * 86400, "day", 86400),
    ):
        if seconds < limit:
            count = max(1, int(seconds / size + 0.5))  # half up, as the JS does
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return when.strftime("%Y-%m-%d")


def _signed_in(request: web.Request) -> Principal:
    """The signed-in account, or a redirect to sign in that comes back here."""
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/sign-in?next=" + quote(request.path_qs, safe="/"))
    return principal


async def projects_page(request: web.Request) -> web.Response:
    principal = _signed_in(request)
    search = request.query.get("search", "")[:200]
    hidden_arg = request.query.get("hidden", "")
    hidden = _HIDDEN.get(hidden_arg, False)
    projects = await request.app[PROJECTS].list(principal, search=search, hidden=hidden)
    return _projects_response(
        request, projects=projects, search=search, show_hidden=hidden is not False, error=None
    )


def _projects_response(
    request: web.Request,
    *,
    projects: list[dict[str, Any]],
    search: str,
    show_hidden: bool,
    error: str | None,
    status: int = 200,
    title: str = "",
) -> web.Response:
    now = datetime.now(UTC)
    for project in projects:
        project["edited_text"] = relative_time(project.get("last_edited"), now)
    return render(
        request,
        "projects.html",
        status=status,
        page="projects",
        projects=projects,
        search=search,
        show_hidden=show_hidden,
        error=error,
        new_title=title,
    )


async def create_project_submit(request: web.Request) -> web.Response:
    principal = _signed_in(request)
    form = await request.post()
    title = form.get("title")
    try:
        project_id = await request.app[PROJECTS].create(principal, title=title)
    except DomainError as exc:
        projects = await request.app[PROJECTS].list(principal)
        return _projects_response(
            request,
            projects=projects,
            search="",
            show_hidden=False,
            error=exc.message,
            status=exc.status,
            title=title if isinstance(title, str) else "",
        )
    raise web.HTTPSeeOther(f"/projects/{project_id}")


async def project_page(request: web.Request) -> web.Response:
    principal = _signed_in(request)
    tab = request.match_info.get("tab", "files")
    if tab not in TABS:
        raise web.HTTPNotFound()
    path = request.match_info.get("path", "").strip("/")
    try:
        project_id = parse_project_id(request.match_info["project_id"])
        project = await request.app[PROJECTS].get(principal, project_id)
    except NotFound:
        return render(request, "project_missing.html", status=404, page="project-missing")
    if tab == "edit" and not path:
        raise web.HTTPSeeOther(f"/projects/{project_id}/files/")
    now = datetime.now(UTC)
    boot = {
        "project_id": str(project_id),
        "tab": tab,
        "path": path,
        "state": project["state"],
        "role": project["role"],
        "account_id": str(principal.account_id),
        "title": project["title"],
    }
    return render(
        request,
        "project.html",
        page="project",
        project=project,
        tab=tab,
        path=path,
        boot_json=json.dumps(boot),
        edited_text=relative_time(project.get("last_edited"), now),
        content_origin=request.app[CONTENT_ORIGINS].url_for(project_id),
        servers={
            entry["name"]: entry["available"]
            for entry in request.app[SERVER_REPORTS].known(project_id)
        },
    )


def routes() -> list[web.AbstractRouteDef]:
    base = "/projects/{project_id}"
    return [
        web.get("/projects", projects_page),
        web.post("/projects", create_project_submit),
        web.get(base, project_page),
        web.get(base + "/{tab:files}", project_page),
        web.get(base + "/{tab:files}/{path:.*}", project_page),
        web.get(base + "/{tab:edit}/{path:.+}", project_page),
        web.get(base + "/{tab:terminal}", project_page),
        web.get(base + "/{tab:settings}", project_page),
    ]
