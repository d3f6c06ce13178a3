"""Copies between projects (`services.copies`):

- `POST /api/v2/copies` `{"src_project_id","src_path","dst_project_id","dst_path",
  "overwrite"?}` → 202 `{"copy_id"}`; with `"dst_project_ids": [...]` instead of
  `dst_project_id`, one copy per project → 202 `{"copy_ids": [...]}` (a batch);
- `GET /api/v2/copies/{copy_id}` → its state and progress;
- `GET /api/v2/copies?project_id=` → the recent copies into or out of a project;
- `DELETE /api/v2/copies/{copy_id}` → cancels a queued or running copy (409 once ended).
"""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.keys import COPIES
from cocalc_k8s.services.copies import parse_copy_id
from cocalc_k8s.services.projects import parse_project_id
from cocalc_k8s.web.auth import require_account
from cocalc_k8s.web.jsonio import json_response, read_json


async def create(request: web.Request) -> web.Response:
    principal = require_account(request)
    body = await read_json(request)
    ids = await request.app[COPIES].request(principal, body)
    if isinstance(body, dict) and "dst_project_ids" in body:
        return json_response({"copy_ids": ids}, status=202)
    return json_response({"copy_id": ids[0]}, status=202)


async def status(request: web.Request) -> web.Response:
    principal = require_account(request)
    copy_id = parse_copy_id(request.match_info["copy_id"])
    return json_response(await request.app[COPIES].get(principal, copy_id))


async def recent(request: web.Request) -> web.Response:
    principal = require_account(request)
    project_id = parse_project_id(request.query.get("project_id", ""))
    return json_response({"copies": await request.app[COPIES].recent(principal, project_id)})


async def cancel(request: web.Request) -> web.Response:
    principal = require_account(request)
    copy_id = parse_copy_id(request.match_info["copy_id"])
    return json_response(await request.app[COPIES].cancel(principal, copy_id))


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.post("/api/v2/copies", create),
        web.get("/api/v2/copies", recent),
        web.get("/api/v2/copies/{copy_id}", status),
        web.delete("/api/v2/copies/{copy_id}", cancel),
    ]
