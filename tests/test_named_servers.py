"""Named servers as users meet them: the project page links only the servers the project
can run (its agent's report), and a server that cannot start answers with why and what to
do (a page for browsers, ``{"error"}`` for scripts), never a bare 502."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.agent.named_servers import available
from cocalc_k8s.keys import CONTENT_ORIGINS
from tests.conftest import sign_up
from tests.localhost import localhost_session
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(120)


def _program(directory: Path, name: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def test_available_says_which_servers_can_run_and_why_not(tmp_path: Path) -> None:
    _program(tmp_path, "jupyter-lab")
    _program(tmp_path, "code-server")
    by_name = {entry["name"]: entry for entry in available(str(tmp_path))}
    lab_here = os.path.exists(os.path.join(os.path.dirname(os.sys.executable), "jupyter-lab"))
    assert by_name["jupyterlab"]["available"] and by_name["code"]["available"]
    assert by_name["code"]["reason"] is None
    if not os.path.exists(os.path.join(os.path.dirname(os.sys.executable), "jupyter-notebook")):
        assert not by_name["jupyter"]["available"]
        assert "notebook" in str(by_name["jupyter"]["reason"])
    empty = tmp_path / "empty"
    empty.mkdir()
    by_name = {entry["name"]: entry for entry in available(str(empty))}
    assert not by_name["code"]["available"]
    assert "code-server" in str(by_name["code"]["reason"])
    assert by_name["jupyterlab"]["available"] == lab_here  # beside the agent's Python


async def test_the_page_links_only_the_servers_the_project_reports(make_client: Any) -> None:
    pytest.importorskip("jupyterlab")
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    # Before the project has run: the installed environment is assumed, VS Code is not.
    html = await (await client.get(f"/projects/{project_id}")).text()
    assert 'data-server="jupyterlab" data-testid="server-jupyterlab">' in html
    assert 'data-server="code" data-testid="server-code" hidden>' in html
    status, body = await owner.call("GET", f"/api/v2/projects/{project_id}/servers")
    assert status == 200 and not any(entry["reported"] for entry in body["servers"]), body

    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(owner, project_id, "running", deadline=60)
    status, body = await owner.call("GET", f"/api/v2/projects/{project_id}/servers")
    assert status == 200, body
    by_name = {entry["name"]: entry for entry in body["servers"]}
    assert all(entry["reported"] for entry in body["servers"])
    assert by_name["jupyterlab"]["available"] is True
    code_installed = shutil.which("code-server") is not None
    assert by_name["code"]["available"] is code_installed
    if not code_installed:
        assert "code-server" in by_name["code"]["reason"]
        html = await (await client.get(f"/projects/{project_id}")).text()
        assert 'data-server="code" data-testid="server-code" hidden>' in html

    stranger_client = await make_client(same_hub_as=client)
    stranger = User(stranger_client, await sign_up(stranger_client))
    status, _ = await stranger.call("GET", f"/api/v2/projects/{project_id}/servers")
    assert status == 404
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")


async def test_a_server_that_cannot_start_says_why_and_what_to_do(make_client: Any) -> None:
    pytest.importorskip("jupyterlab")
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    # (traitlets logs and skips a config file that raises: this one ends the server)
    config = "import os\nprint('a broken Jupyter configuration', flush=True)\nos._exit(3)\n"
    resp = await client.put(
        f"/api/v2/projects/{project_id}/files/.jupyter/jupyter_server_config.py",
        data=config.encode(),
        headers=owner.headers,
    )
    assert resp.status in (200, 201, 204), await resp.text()
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "k"})
    base = f"{client.app[CONTENT_ORIGINS].url_for(project_id)}/{project_id}/port/jupyterlab"
    auth = {"Authorization": f"Bearer {key['key']}"}
    async with localhost_session(headers=auth) as session:
        async with session.get(f"{base}/lab", headers={"Accept": "text/html"}) as resp:
            page = await resp.text()
            assert resp.status >= 500 and resp.content_type == "text/html", page
        assert "JupyterLab could not start" in page
        assert "the server exited at start" in page
        assert "a broken Jupyter configuration" in page  # the end of its log
        assert "What to do" in page and "reload this page" in page
        async with session.get(f"{base}/api/status") as resp:
            assert resp.content_type == "application/json"
            assert "exited at start" in (await resp.json())["error"]
        # Fixed, the next request starts it.
        resp = await client.delete(
            f"/api/v2/projects/{project_id}/files/.jupyter/jupyter_server_config.py",
            headers=owner.headers,
        )
        assert resp.status == 204
        async with session.get(f"{base}/api/status") as resp:
            assert resp.status == 200, await resp.text()
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
