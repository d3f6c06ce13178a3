"""``GET /api/v2/projects/{id}/servers``: the named servers the project can run
(see `cocalc_k8s.web.server_reports`), for the project page's links."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.keys import SERVER_REPORTS
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.jsonio import json_response


async def servers(request: web.Request) -> web.Response:
    """``{"servers": [{"name", "available", "reason", "reported"}]}``; `reported` is false
    when the project has not run since the hub started (an assumption, see the service)."""
    access = await project_access(request)
    report = await request.app[SERVER_REPORTS].current(access.project_id)
    return json_response({"servers": report})
