"""The culler: idle projects stop, always-running ones come back, stuck ones fail."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from cocalc_k8s.keys import CULLER, LIFECYCLE
from tests.conftest import sign_up
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def owner(make_client: Any) -> User:
    client = await make_client()
    return User(client, await sign_up(client))


def sql(database_url: str, query: str, *params: Any) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(query, params)


async def started(owner: User) -> str:
    project_id = await new_project(owner)
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(owner, project_id, "running")
    return project_id


async def test_idle_project_is_stopped_and_active_one_kept(owner: User, database_url: str) -> None:
    idle, busy = await started(owner), await started(owner)
    sql(
        database_url,
        "UPDATE projects SET last_active = now() - interval '2 hours' WHERE project_id = %s",
        idle,
    )
    done = await owner.client.app[CULLER].sweep()
    assert (idle, "stop") in done
    assert all(project != busy for project, _ in done)
    project = await wait_state(owner, idle, "stopped")
    assert project["state"] == "stopped"
    _, other = await owner.call("GET", f"/api/v2/projects/{busy}")
    assert other["state"] == "running"
    await owner.call("POST", f"/api/v2/projects/{busy}/stop")
    await wait_state(owner, busy, "stopped")


async def test_always_running_is_never_culled_and_comes_back(
    owner: User, database_url: str
) -> None:
    project_id = await started(owner)
    sql(
        database_url,
        "UPDATE projects SET quota = '{\"always_running\": true}',"
        " last_active = now() - interval '9 hours' WHERE project_id = %s",
        project_id,
    )
    assert await owner.client.app[CULLER].sweep() == []
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped")
    assert (project_id, "start") in await owner.client.app[CULLER].sweep()
    await wait_state(owner, project_id, "running")
    sql(database_url, "UPDATE projects SET quota = '{}' WHERE project_id = %s", project_id)
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped")


async def test_stuck_starting_is_marked_failed(owner: User, database_url: str) -> None:
    project_id = await new_project(owner)
    sql(
        database_url,
        "UPDATE projects SET state = 'starting', state_changed = now() - interval '1 hour'"
        " WHERE project_id = %s",
        project_id,
    )
    assert (project_id, "fail") in await owner.client.app[CULLER].sweep()
    _, project = await owner.call("GET", f"/api/v2/projects/{project_id}")
    assert project["state"] == "failed" and "stuck starting" in project["error"]


async def test_deleting_a_running_project_stops_it(owner: User) -> None:
    project_id = await started(owner)
    backend = owner.client.app[LIFECYCLE].backend
    assert backend.address(uuid.UUID(project_id)) is not None
    assert (await owner.call("DELETE", f"/api/v2/projects/{project_id}"))[0] == 204
    # The stop request is acted on; the sweep would catch it otherwise.
    deadline = datetime.now(UTC) + timedelta(seconds=15)
    while backend.address(uuid.UUID(project_id)) is not None:
        assert datetime.now(UTC) < deadline
        await owner.client.app[CULLER].sweep()
        await asyncio.sleep(0.05)
