"""The hub origin's side of project content: sending browsers to the content origin.

- `/{project_id}/port|server|raw/…` asked of the hub origin is redirected, unchanged, to
  the content origin (project content never runs on the hub's origin);
- `/content-auth?project_id=…&next=…` is where the content origin sends a browser without
  its cookie: a signed-in collaborator gets a one-minute grant, carried back in the
  redirect, that the content origin trades for its own cookie.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from cocalc_k8s.core import content_tokens
from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.identity import Credential
from cocalc_k8s.core.redirect_targets import local_target
from cocalc_k8s.keys import CONTENT_ORIGINS, PROJECTS, SECRET_KEY
from cocalc_k8s.services.projects import parse_project_id
from cocalc_k8s.web.auth import principal_of

UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


async def to_content_origin(request: web.Request) -> web.Response:
    origin = request.app[CONTENT_ORIGINS].url_for(request.match_info["project_id"].lower())
    raise web.HTTPTemporaryRedirect(origin + request.raw_path)


async def content_auth(request: web.Request) -> web.Response:
    project_id = parse_project_id(request.query.get("project_id", ""))
    next_path = request.query.get("next", f"/{project_id}/")
    if local_target(next_path) is None or not next_path.startswith(f"/{project_id}/"):
        raise BadRequest("next must be a path inside the project")
    principal = principal_of(request)
    if principal is None:
        back = f"/content-auth?project_id={project_id}&next={quote(next_path)}"
        raise web.HTTPSeeOther(f"/sign-in?next={quote(back)}")
    await request.app[PROJECTS].access(principal, project_id)  # NotFound for strangers
    token = content_tokens.issue(
        request.app[SECRET_KEY],
        "exchange",
        principal.account_id,
        project_id,
        credential=Credential.of(principal),  # the grant ends with this session or key
        lifetime=content_tokens.EXCHANGE_SECONDS,
    )
    target = (
        f"{request.app[CONTENT_ORIGINS].url_for(project_id)}/{project_id}/_cocalc/auth"
        f"?token={quote(token)}&next={quote(next_path)}"
    )
    response = web.HTTPSeeOther(target)
    response.headers["Referrer-Policy"] = "no-referrer"
    raise response


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/content-auth", content_auth),
        web.route(
            "*",
            "/{project_id:" + UUID_PATTERN + "}/{kind:port|server|raw}{tail:(/.*)?}",
            to_content_origin,
        ),
    ]
