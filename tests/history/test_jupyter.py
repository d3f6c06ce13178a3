"""A notebook saved by a real JupyterLab (its contents API, through the proxy on the
content origin) becomes TimeTravel versions: the agent's watcher sees the save."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from cocalc_k8s.keys import CONTENT_ORIGINS, HISTORY
from tests.conftest import sign_up
from tests.localhost import localhost_session
from tests.test_projects_api import User, new_project

pytest.importorskip("jupyterlab")
pytestmark = pytest.mark.timeout(150)


def notebook(source: str) -> dict[str, Any]:
    return {
        "type": "notebook",
        "format": "json",
        "content": {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": "cell-1",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
    }


async def test_jupyterlab_saves_are_versions(make_client: Any) -> None:
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "jupyterlab"})
    base = f"{client.app[CONTENT_ORIGINS].url_for(project_id)}/{project_id}/port/jupyterlab"
    history = client.app[HISTORY]

    async def versions() -> int:
        found = await history.store.find(uuid.UUID(project_id), "analysis.ipynb")
        return 0 if found is None else found.last_version

    async with localhost_session(headers={"Authorization": f"Bearer {key['key']}"}) as session:
        async with session.get(f"{base}/api") as resp:  # starts the project, then JupyterLab
            assert resp.status == 200, await resp.text()
        async with session.get(f"{base}/api/contents") as resp:
            xsrf = resp.cookies.get("_xsrf")
        headers = {"X-XSRFToken": xsrf.value} if xsrf else {}
        for i, source in enumerate(["print(1)", "print(1)\nprint(2)"], start=1):
            async with session.put(
                f"{base}/api/contents/analysis.ipynb", json=notebook(source), headers=headers
            ) as resp:
                assert resp.status in (200, 201), await resp.text()
            deadline = time.monotonic() + 20
            while await versions() < i:
                assert time.monotonic() < deadline, f"save {i} is not a version"
                await asyncio.sleep(0.1)
    status, body = await owner.call(
        "GET", f"/api/v2/projects/{project_id}/history?path=analysis.ipynb"
    )
    assert status == 200
    assert [v["version"] for v in body["versions"]] == [2, 1]
    # "disk" until the proxy attributes Jupyter saves (HistoryService.attribute), then "jupyter"
    assert {v["kind"] for v in body["versions"]} <= {"disk", "jupyter"}
    resp = await client.get(
        f"/api/v2/projects/{project_id}/history/versions/2?path=analysis.ipynb",
        headers=owner.headers,
    )
    saved = json.loads(await resp.text())
    assert "".join(saved["cells"][0]["source"]) == "print(1)\nprint(2)"  # nbformat splits lines
