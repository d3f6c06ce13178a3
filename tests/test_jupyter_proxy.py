"""A real client through the proxy: Jupyter Server in a local project, a kernel created over
its REST API, `1+1` executed over the kernel WebSocket, all through the content origin."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from cocalc_k8s.keys import CONTENT_ORIGINS
from tests.conftest import sign_up
from tests.localhost import localhost_session
from tests.test_projects_api import User, new_project

pytest.importorskip("jupyter_server")
pytest.importorskip("ipykernel")
pytestmark = pytest.mark.timeout(120)


NOTEBOOK = {
    "cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": "saved"}],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def execute_request(code: str) -> dict[str, Any]:
    msg_id = uuid.uuid4().hex
    return {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": "2026-01-01T00:00:00Z",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False},
        "channel": "shell",
        "buffers": [],
    }


async def test_jupyter_kernel_runs_through_the_proxy(make_client: Any) -> None:
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "jupyter"})
    base = f"{client.app[CONTENT_ORIGINS].url_for(project_id)}/{project_id}/port/jupyterlab"
    auth = {"Authorization": f"Bearer {key['key']}"}
    async with localhost_session(headers=auth) as session:
        # The project is stopped: the first request starts it and then Jupyter.
        async with session.get(f"{base}/api") as resp:
            assert resp.status == 200, await resp.text()
            assert "version" in await resp.json()
        # The Notebook 7 interface is the same server's: /port/jupyter/ leads there.
        jupyter = base.replace("/port/jupyterlab", "/port/jupyter")
        async with session.get(f"{jupyter}/", allow_redirects=False) as resp:
            assert resp.status == 307
            assert resp.headers["Location"] == f"/{project_id}/port/jupyterlab/tree"
        async with session.get(f"{base}/tree", headers={"Accept": "text/html"}) as resp:
            page = await resp.text()
            assert resp.status == 200 and '"appName": "Jupyter Notebook"' in page, page[:500]
        # Jupyter's user is the account, by the identity the proxy signs.
        async with session.get(f"{base}/api/me") as resp:
            assert resp.status == 200, await resp.text()
            me = (await resp.json())["identity"]
            assert me["username"] == owner.account_id and me["name"] == "Test User", me
        async with session.get(f"{base}/api/kernelspecs") as resp:
            xsrf = resp.cookies.get("_xsrf")
        headers = {"X-XSRFToken": xsrf.value} if xsrf else {}
        async with session.post(
            f"{base}/api/kernels", json={"name": "python3"}, headers=headers
        ) as resp:
            assert resp.status == 201, await resp.text()
            kernel_id = (await resp.json())["id"]
        async with session.ws_connect(f"{base}/api/kernels/{kernel_id}/channels") as ws:
            request = execute_request("1+1")
            await ws.send_str(json.dumps(request))
            async with asyncio.timeout(60):
                while True:
                    msg = json.loads(await ws.receive_str())
                    parent = msg.get("parent_header", {}).get("msg_id")
                    if (
                        parent == request["header"]["msg_id"]
                        and msg["msg_type"] == "execute_result"
                    ):
                        assert msg["content"]["data"]["text/plain"] == "2"
                        break
        async with session.delete(f"{base}/api/kernels/{kernel_id}", headers=headers) as resp:
            assert resp.status == 204
        # A save through Jupyter's contents API is a TimeTravel version by the saver.
        notebook = {"type": "notebook", "format": "json", "content": NOTEBOOK}
        async with session.put(f"{base}/api/contents/saved.ipynb", json=notebook) as resp:
            assert resp.status in (200, 201), await resp.text()
    history = f"/api/v2/projects/{project_id}/history?path=saved.ipynb"
    deadline = time.monotonic() + 30
    while True:
        _, found = await owner.call("GET", history)
        versions = found.get("versions", [])
        if versions and versions[0]["kind"] == "jupyter":
            break
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)  # the watcher records the save once it settles
    assert versions[0]["authors"] == [{"account_id": owner.account_id, "name": "Test User"}]

    # Jupyter demands its own token, which only the proxy supplies: inside the project
    # (or on any network it shares) a request without it is refused, and the token is not
    # in Jupyter's arguments.
    find = "tr '\\0' ' ' < /proc/$(pgrep -f 'ServerApp[.]port' | head -1)/cmdline"
    _, body = await owner.call("POST", f"/api/v2/projects/{project_id}/exec", {"command": find})
    cmdline = body["stdout"]
    port = int(cmdline.split("--ServerApp.port=")[1].split()[0])
    assert "token" not in cmdline.lower()
    direct = (
        'python3 -c "import urllib.request as u; '
        f"u.urlopen('http://127.0.0.1:{port}/{project_id}/port/jupyterlab/api/status')\""
    )
    _, body = await owner.call("POST", f"/api/v2/projects/{project_id}/exec", {"command": direct})
    assert body["exit_code"] != 0 and "403" in body["stderr"], body
    async with (
        localhost_session(headers=auth) as session,
        session.get(f"{base}/api/status") as resp,
    ):
        assert resp.status == 200, await resp.text()

    stranger_client = await make_client(same_hub_as=client)
    stranger = User(stranger_client, await sign_up(stranger_client))
    _, stranger_key = await stranger.call("POST", "/api/v2/api-keys", {"name": "s"})
    async with (
        localhost_session(headers={"Authorization": f"Bearer {stranger_key['key']}"}) as other,
        other.get(f"{base}/api") as resp,
    ):
        assert resp.status == 404
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
