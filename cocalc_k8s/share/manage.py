"""/share/project/{project_id}: what a project publishes, for its collaborators, with its
visibility, views and links; the project's URL name and the reader's own username (the
parts of vanity URLs). Changes go through the JSON API (static/share-manage.js)."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.keys import PROJECTS
from cocalc_k8s.services.sharing import LICENSES, VISIBILITIES
from cocalc_k8s.share.keys import SHARING, URL_NAMES
from cocalc_k8s.share.pages import LICENSE_NAMES
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.auth import principal_of
from cocalc_k8s.web.templating import render


async def project_shares(request: web.Request) -> web.StreamResponse:
    if principal_of(request) is None:
        raise web.HTTPSeeOther(f"/sign-in?next={request.path}")
    access = await project_access(request)
    project = await request.app[PROJECTS].get(access.principal, access.project_id)
    items = await request.app[SHARING].for_project(access.principal, access.project_id)
    names = request.app[URL_NAMES]
    return render(
        request,
        "share_project.html",
        page="share",
        project=project,
        project_id=access.project_id,
        items=items,
        role=access.role,
        visibilities=VISIBILITIES,
        licenses=LICENSES,
        license_names=LICENSE_NAMES,
        project_name=await names.project_name(access.project_id),
        username=await names.username(access.principal.account_id),
        enabled=await request.app[SHARING].enabled(),
    )
