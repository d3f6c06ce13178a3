"""Starting and stopping projects on the local backend: real agent processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cocalc_k8s.keys import LIFECYCLE
from tests.conftest import sign_up
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def owner(make_client: Any) -> User:
    client = await make_client()
    return User(client, await sign_up(client))


async def events_until_settled(
    user: User, project_id: str, query: str = ""
) -> list[dict[str, Any]]:
    events = []
    async with user.client.get(f"/api/v2/projects/{project_id}/progress{query}") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for line in resp.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
    return events


async def wait_state(
    user: User, project_id: str, wanted: str, deadline: float = 20
) -> dict[str, Any]:
    async with asyncio.timeout(deadline):
        while True:
            _, project = await user.call("GET", f"/api/v2/projects/{project_id}")
            if project["state"] == wanted:
                return project
            await asyncio.sleep(0.02)


async def test_start_with_progress_then_stop(owner: User, database_url: str) -> None:
    project_id = await new_project(owner)
    events: list[dict[str, Any]] = []
    url = f"/api/v2/projects/{project_id}/progress?wait=1"
    async with owner.client.get(url) as resp:
        async for line in resp.content:
            if not line.startswith(b"data: "):
                continue
            events.append(json.loads(line[6:]))
            if len(events) == 1:  # subscribed: now ask for the start
                assert events[0] == {"state": "stopped"}
                status, _ = await owner.call("POST", f"/api/v2/projects/{project_id}/start")
                assert status == 202
    assert events[-1]["state"] == "running"
    messages = [e["message"] for e in events if "message" in e]
    assert messages and all(isinstance(m, str) and m for m in messages)
    percents = [e["percent"] for e in events if "percent" in e]
    assert percents == sorted(percents)
    project = await wait_state(owner, project_id, "running")
    assert project["last_started"] is not None

    # Idempotent: starting a running project changes nothing.
    status, body = await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    assert status == 202 and body["state"] == "running"

    status, _ = await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    assert status == 202
    await wait_state(owner, project_id, "stopped")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT from_state, to_state FROM project_transitions"
            " WHERE project_id = %s ORDER BY id",
            (project_id,),
        ).fetchall()
    assert rows == [
        ("stopped", "starting"),
        ("starting", "running"),
        ("running", "stopping"),
        ("stopping", "stopped"),
    ]


async def test_a_request_written_in_psql_is_acted_on(owner: User, database_url: str) -> None:
    project_id = await new_project(owner)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE projects SET requested = 'start' WHERE project_id = %s", (project_id,))
    await wait_state(owner, project_id, "running")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE projects SET requested = 'stop' WHERE project_id = %s", (project_id,))
    await wait_state(owner, project_id, "stopped")


async def test_agent_crash_marks_failed_and_restart_recovers(owner: User) -> None:
    project_id = await new_project(owner)
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(owner, project_id, "running")
    manager = owner.client.app[LIFECYCLE]
    address = manager.backend.address(uuid.UUID(project_id))
    assert address is not None
    agent = manager.backend._agents[uuid.UUID(project_id)].process
    os.kill(agent.pid, signal.SIGKILL)
    project = await wait_state(owner, project_id, "failed")
    assert "killed" in project["error"] or "exited" in project["error"]
    await owner.call("POST", f"/api/v2/projects/{project_id}/restart")
    project = await wait_state(owner, project_id, "running")
    assert project["error"] is None
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped")


async def test_stopping_a_stopped_project_is_a_no_op(owner: User, database_url: str) -> None:
    project_id = await new_project(owner)
    status, body = await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    assert status == 202 and body["state"] == "stopped"
    events = await events_until_settled(owner, project_id)
    assert events == [{"state": "stopped"}]
    with psycopg.connect(database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM project_transitions WHERE project_id = %s", (project_id,)
        ).fetchone()
    assert count == (0,)


async def test_hub_shutdown_stops_projects_and_marks_them(
    make_client: Any, database_url: str
) -> None:
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(owner, project_id, "running")
    agent = client.app[LIFECYCLE].backend._agents[uuid.UUID(project_id)].process
    await client.close()
    assert agent.returncode is not None
    with psycopg.connect(database_url) as conn:
        state = conn.execute(
            "SELECT state FROM projects WHERE project_id = %s", (project_id,)
        ).fetchone()
    assert state == ("stopped",)


async def follow_request(owner: User, project_id: str, action: str) -> list[dict[str, Any]]:
    """Open the progress stream, then send the request; the events until it is handled."""
    events: list[dict[str, Any]] = []
    async with owner.client.get(f"/api/v2/projects/{project_id}/progress?wait=1") as resp:
        async for line in resp.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
                if len(events) == 1:
                    status, _ = await owner.call("POST", f"/api/v2/projects/{project_id}/{action}")
                    assert status == 202
    return events


async def test_wait_follows_a_restart_to_the_end_and_a_no_op_too(owner: User) -> None:
    project_id = await new_project(owner)
    events = await follow_request(owner, project_id, "start")
    assert events[-1] == {"state": "running", "done": "start"}
    events = await follow_request(owner, project_id, "restart")
    states = [e["state"] for e in events]
    assert "stopped" in states and events[-1] == {"state": "running", "done": "restart"}
    events = await follow_request(owner, project_id, "start")  # already running
    assert events[-1] == {"state": "running", "done": "start"}
    await follow_request(owner, project_id, "stop")


async def test_open_progress_streams_end_when_the_hub_stops(make_client: Any) -> None:
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    resp = await client.get(f"/api/v2/projects/{project_id}/progress?follow=1")
    assert (await resp.content.readline()).startswith(b"data: ")
    client.app[LIFECYCLE].end_streams()  # what the hub's shutdown does first
    async with asyncio.timeout(5):
        rest = await resp.content.read()  # the stream ends instead of waiting for events
    assert b"closing" not in rest


@pytest.fixture
def broken_python() -> Iterator[str]:
    """A "python" that says why it cannot run the agent, and exits (a broken install)."""
    folder = Path(tempfile.mkdtemp(prefix="cocalc-broken-python-"))
    folder.chmod(0o755)  # the project's own user runs it
    fake = folder / "python"
    fake.write_text("#!/bin/sh\necho 'No module named cocalc_k8s.agent' >&2\nexit 1\n")
    fake.chmod(0o755)
    yield str(fake)
    shutil.rmtree(folder)


async def test_an_agent_that_dies_at_start_says_why(owner: User, broken_python: str) -> None:
    backend = owner.client.app[LIFECYCLE].backend
    real, backend.python = backend.python, broken_python  # type: ignore[attr-defined]
    try:
        project_id = await new_project(owner)
        await owner.call("POST", f"/api/v2/projects/{project_id}/start")
        project = await wait_state(owner, project_id, "failed")
    finally:
        backend.python = real  # type: ignore[attr-defined]
    assert "exited at start (code 1): No module named cocalc_k8s.agent" in project["error"]


async def test_project_uids_are_never_reused(owner: User, database_url: str) -> None:
    """Uids come from a sequence: when the project with the highest uid is purged, the
    next project gets a new uid, not the purged one's (whose daemons may have survived)."""
    manager = owner.client.app[LIFECYCLE]
    first = uuid.UUID(await new_project(owner))
    uid = await manager._uid(first)
    assert uid >= 200_000
    assert await manager._uid(first) == uid  # kept once drawn
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM projects WHERE project_id = %s", (first,))
    second = uuid.UUID(await new_project(owner))
    assert await manager._uid(second) > uid
