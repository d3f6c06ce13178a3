"""GET /api/v2/projects/{project_id}/events: the project log, for its collaborators and
admins (`project_access`), newest first, paginated by event id:
`?before=<id>` (the last id of the previous page) and `?limit=<1..200>` (default 50)."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.keys import ENGINE
from cocalc_k8s.services import project_log
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.jsonio import json_response


async def project_events(request: web.Request) -> web.Response:
    access = await project_access(request)
    before, limit = project_log.page_arguments(
        request.query.get("before"), request.query.get("limit")
    )
    entries = await project_log.page(
        request.app[ENGINE], access.project_id, before=before, limit=limit
    )
    return json_response(entries)


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/api/v2/projects/{project_id}/events", project_events)]
