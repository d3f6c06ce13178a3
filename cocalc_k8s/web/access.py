"""The one access check for project resources.

Every handler under `/api/v2/projects/{project_id}` starts with `project_access`: anonymous
callers get 401; accounts that are not collaborators get 404 (the project's existence is
not revealed); collaborators, the owner and admins get their role.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiohttp import web

from cocalc_k8s.core.identity import Principal
from cocalc_k8s.keys import PROJECTS
from cocalc_k8s.services.projects import Role, parse_project_id
from cocalc_k8s.web.auth import require_account


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    principal: Principal
    project_id: uuid.UUID
    role: Role


async def project_access(request: web.Request) -> ProjectAccess:
    principal = require_account(request)
    project_id = parse_project_id(request.match_info["project_id"])
    role = await request.app[PROJECTS].access(principal, project_id)
    return ProjectAccess(principal=principal, project_id=project_id, role=role)
