"""Shared steps of the share tests: a signed-in user with a project and files in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cocalc_k8s.keys import SETTINGS
from tests.test_projects_api import User


def home_of(user: User, project_id: str) -> Path:
    home = user.client.app[SETTINGS].data_dir / "projects" / project_id
    home.mkdir(parents=True, exist_ok=True)
    return home


def write(home: Path, rel: str, data: bytes | str) -> Path:
    path = home / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


async def publish(user: User, project_id: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("visibility", "listed")
    status, body = await user.call("POST", f"/api/v2/projects/{project_id}/public-paths", fields)
    assert status == 201, body
    return dict(body)
