"""TimeTravel over HTTP (services.history): a file's versions, one version's bytes, the diff
of two, restoring one (as a new version), a folder's deleted files. Collaborators and
admins only (anyone else gets 404, as for every project resource); served from the
database, so it works while the project is stopped.

    GET  /api/v2/projects/{id}/history?path=&before=&limit=
         {"path", "deleted", "versions": [{"version", "time", "authors", "size", "kind",
          "restored_from"}], "more"}   newest first; `before` pages on
    GET  /api/v2/projects/{id}/history/versions/{version}?path=[&download=1]   the text
    GET  /api/v2/projects/{id}/history/diff?path=&from=&to=
         {"from", "to", "ops": [[op, text], ...]}   op "=", "-" or "+"
    POST /api/v2/projects/{id}/history/restore {"path", "version"}   201 {"version"}
    GET  /api/v2/projects/{id}/history/deleted?path=DIR
         {"files": [{"path", "deleted", "version", "size"}]}
"""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.keys import ACTIVITY, HISTORY
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.download_types import attachment
from cocalc_k8s.web.jsonio import json_response, read_json

PAGE = 100
MAX_PAGE = 1000


def _number(raw: object, name: str, *, low: int = 1, high: int = 2**31 - 1) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise BadRequest(f"{name} must be a whole number")
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def _path(request: web.Request) -> str:
    path = request.query.get("path")
    if not path:
        raise BadRequest("path is required (?path=file)")
    return path


async def versions(request: web.Request) -> web.Response:
    access = await project_access(request)
    before = request.query.get("before")
    limit = _number(request.query.get("limit", PAGE), "limit", high=MAX_PAGE)
    found = await request.app[HISTORY].versions(
        access.project_id,
        _path(request),
        before=_number(before, "before") if before is not None else None,
        limit=limit,
    )
    return json_response(found)


async def version_text(request: web.Request) -> web.Response:
    access = await project_access(request)
    path = _path(request)
    version = _number(request.match_info["version"], "version")
    text = await request.app[HISTORY].text(access.project_id, path, version)
    headers = {
        "Content-Security-Policy": "sandbox",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=31536000, immutable",  # a version never changes
    }
    if request.query.get("download"):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        stem, dot, ext = name.rpartition(".")
        headers["Content-Disposition"] = attachment(
            f"{stem}.v{version}.{ext}" if dot and stem else f"{name}.v{version}"
        )
    return web.Response(text=text, content_type="text/plain", charset="utf-8", headers=headers)


async def diff(request: web.Request) -> web.Response:
    access = await project_access(request)
    old = _number(request.query.get("from"), "from")
    new = _number(request.query.get("to"), "to")
    ops = await request.app[HISTORY].diff(access.project_id, _path(request), old, new)
    return json_response({"from": old, "to": new, "ops": ops})


async def restore(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    path = body.get("path")
    if not isinstance(path, str) or not path:
        raise BadRequest("path must name a file")
    version = _number(body.get("version"), "version")
    made = await request.app[HISTORY].restore(
        access.project_id, path, version, account_id=access.principal.account_id
    )
    request.app[ACTIVITY].touch(access.project_id)
    return json_response({"version": made}, status=201)


async def deleted(request: web.Request) -> web.Response:
    access = await project_access(request)
    files = await request.app[HISTORY].deleted_in(access.project_id, request.query.get("path", ""))
    return json_response({"files": files})


def routes() -> list[web.AbstractRouteDef]:
    base = "/api/v2/projects/{project_id}/history"
    return [
        web.get(base, versions),
        web.get(base + "/versions/{version}", version_text),
        web.get(base + "/diff", diff),
        web.post(base + "/restore", restore),
        web.get(base + "/deleted", deleted),
    ]
