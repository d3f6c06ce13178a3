"""The file watcher: the agent's long poll over inotify (a real agent process), and versions
of a running project's files changed by commands, through the hub."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cocalc_k8s.agent.launch import AgentProcess, start_agent
from cocalc_k8s.agent.watch import ignored
from cocalc_k8s.keys import HISTORY
from tests.test_lifecycle import wait_state

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def agent(root: Path) -> Iterator[AgentProcess]:
    process = start_agent(root)
    yield process
    assert process.stop() == 0


async def poll(http: aiohttp.ClientSession, **query: Any) -> dict[str, Any]:
    async with http.get("/watch", params={k: str(v) for k, v in query.items()}) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


def test_what_is_ignored() -> None:
    for path in [
        "node_modules/x/index.js",
        "a/.git/objects/ab/cdef",
        "p/__pycache__/m.cpython-311.pyc",
        ".venv/lib/site.py",
        "x/.cache/y",
        "notes.txt~",
        ".cocalc-upload-1234",
        "d/.cocalc-copy-abc/f.txt",
    ]:
        assert ignored(path), path
    for path in ["notes.txt", "a/.git/HEAD", "src/main.py", ".bashrc", "env/cfg.toml"]:
        assert not ignored(path), path


async def test_the_agent_reports_text_files_that_change(
    root: Path, http: aiohttp.ClientSession
) -> None:
    first = await poll(http, after=-1, timeout=0)
    assert first["reset"] is True and first["changes"] == []
    cursor, instance = first["cursor"], first["instance"]
    (root / "notes.txt").write_text("hello\n")
    (root / "data.bin").write_bytes(b"\0\1\2" * 10)
    (root / "node_modules").mkdir()
    (root / "node_modules" / "x.js").write_text("ignored\n")
    (root / "big.txt").write_text("x" * 2000)
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while "notes.txt" not in seen:
        assert time.monotonic() < deadline, seen
        answer = await poll(http, after=cursor, instance=instance, timeout=5, max_bytes=1000)
        assert answer["reset"] is False
        cursor = answer["cursor"]
        seen.update({c["path"]: c["kind"] for c in answer["changes"]})
    assert seen == {"notes.txt": "modified"}  # no binary, no node_modules, nothing over 1000 B

    (root / "notes.txt").unlink()
    answer = await poll(http, after=cursor, instance=instance, timeout=10)
    assert answer["changes"] == [{"path": "notes.txt", "kind": "deleted"}]
    # Nothing more: the long poll waits, then answers with nothing and the same cursor.
    began = time.monotonic()
    idle = await poll(http, after=answer["cursor"], instance=instance, timeout=0.5)
    assert idle["changes"] == [] and idle["cursor"] == answer["cursor"]
    assert time.monotonic() - began >= 0.4
    other = await poll(http, after=answer["cursor"], instance="another-agent", timeout=0)
    assert other["reset"] is True


async def test_commands_in_a_running_project_make_disk_versions(team: Any) -> None:
    project_id, (alice,) = await team(1)
    user = alice.user
    status, _ = await user.call("POST", f"/api/v2/projects/{project_id}/start")
    assert status == 202
    await wait_state(user, project_id, "running", deadline=30)

    async def versions() -> list[dict[str, Any]]:
        status, body = await user.call("GET", f"/api/v2/projects/{project_id}/history?path=log.txt")
        assert status == 200
        return list(body["versions"])

    async def disk_versions(n: int) -> list[dict[str, Any]]:
        # Read the table, not through the API: reading the history records the file too.
        deadline = time.monotonic() + 15
        while True:
            found = await count_versions(user, project_id, "log.txt")
            if found >= n or time.monotonic() > deadline:
                return await versions()
            await asyncio.sleep(0.1)

    for i in range(3):
        status, body = await user.call(
            "POST", f"/api/v2/projects/{project_id}/exec", {"command": f"echo {i} >> log.txt"}
        )
        assert status == 200 and body["exit_code"] == 0, body
        found = await disk_versions(i + 1)
        assert len(found) == i + 1
    assert [v["kind"] for v in found] == ["disk"] * 3
    assert all(v["authors"] == [] for v in found)
    status, _ = await user.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(user, project_id, "stopped", deadline=30)
    assert [v["version"] for v in await versions()] == [3, 2, 1]  # stopped: still there
    resp = await user.client.get(f"/api/v2/projects/{project_id}/history/versions/2?path=log.txt")
    assert await resp.text() == "0\n1\n"


async def count_versions(user: Any, project_id: str, path: str) -> int:
    history = user.client.server.app[HISTORY]
    found = await history.store.find(uuid.UUID(project_id), path)
    return 0 if found is None else int(found.last_version)
