"""The project log API: who may read it, paging, and what the hub records in it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from cocalc_k8s.keys import CULLER
from tests.conftest import sign_up, unique_email
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, make_user, new_project

__all__ = ["make_user"]  # the fixture, shared with the projects API tests

pytestmark = pytest.mark.timeout(60)


async def log_of(user: User, project_id: str, query: str = "") -> list[dict[str, Any]]:
    status, body = await user.call("GET", f"/api/v2/projects/{project_id}/events{query}")
    assert status == 200, body
    events: list[dict[str, Any]] = body["events"]
    return events


def actor(event: dict[str, Any]) -> str | None:
    return None if event["account"] is None else str(event["account"]["id"])


async def test_collaborators_and_admins_read_it_others_do_not(
    make_user: Any, make_client: Any
) -> None:
    alice, bob, stranger = await make_user(), await make_user(), await make_user()
    project_id = await new_project(alice)
    url = f"/api/v2/projects/{project_id}"
    await alice.call("POST", url + "/collaborators", {"email": bob.info["email"]})

    events = await log_of(bob, project_id)
    assert [e["kind"] for e in events] == ["project.collaborator_added", "project.created"]
    added = events[0]
    assert added["account"] == {"id": alice.account_id, "name": "Test User"}
    assert added["data"] == {"collaborator": bob.account_id, "name": "Test User"}
    assert isinstance(added["id"], int) and added["time"]

    status, body = await stranger.call("GET", url + "/events")
    assert (status, body) == (404, {"error": "no such project"})  # as for any project route
    anonymous = await make_client()
    assert (await anonymous.get(url + "/events")).status == 401

    admin_email = unique_email("admin")
    admin_hub = await make_client(admin_email=admin_email)
    admin = User(admin_hub, await sign_up(admin_hub, email=admin_email))
    await admin.call("PATCH", url, {"quota": {"memory_mb": 3000}})
    events = await log_of(admin, project_id)
    assert events[0]["kind"] == "project.quota_changed"
    assert events[0]["data"] == {"quota": {"memory_mb": 3000}}
    assert actor(events[0]) == admin.account_id

    # Leaving is told apart from being removed; afterwards the log is closed to Bob.
    await bob.call("DELETE", f"{url}/collaborators/{bob.account_id}")
    assert (await log_of(alice, project_id))[0]["kind"] == "project.collaborator_left"
    assert (await bob.call("GET", url + "/events"))[0] == 404


async def test_pages_newest_first_by_id(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    url = f"/api/v2/projects/{project_id}"
    for n in range(6):
        await alice.call("PATCH", url, {"title": f"Draft {n}"})
    await alice.call("PATCH", url, {"title": "Draft 5"})  # unchanged: not logged
    await alice.call("PATCH", url, {"description": "about it"})

    everything = await log_of(alice, project_id)
    assert [e["kind"] for e in everything] == [
        "project.description_changed",
        *["project.title_changed"] * 6,
        "project.created",
    ]
    assert everything[1]["data"] == {"title": "Draft 5", "previous": "Draft 4"}
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)

    seen: list[int] = []
    query = "?limit=3"
    while True:
        status, body = await alice.call("GET", f"{url}/events{query}")
        assert status == 200 and len(body["events"]) <= 3
        seen += [e["id"] for e in body["events"]]
        if not body["more"]:
            break
        query = f"?limit=3&before={seen[-1]}"
    assert seen == ids
    assert (await log_of(alice, project_id, f"?before={ids[-1]}")) == []

    for bad in ("limit=0", "limit=201", "limit=ten", "before=x", "before=0"):
        status, body = await alice.call("GET", f"{url}/events?{bad}")
        assert status == 400 and ("limit" in body["error"] or "before" in body["error"]), bad
    assert len(await log_of(alice, project_id, "?limit=200")) == len(ids)


async def test_start_and_stop_name_who_asked(make_user: Any) -> None:
    alice, bob = await make_user(), await make_user()
    project_id = await new_project(alice)
    url = f"/api/v2/projects/{project_id}"
    await alice.call("POST", url + "/collaborators", {"email": bob.info["email"]})
    await alice.call("POST", url + "/start")
    await wait_state(alice, project_id, "running")
    await bob.call("POST", url + "/stop")
    await wait_state(alice, project_id, "stopped")

    events = await log_of(alice, project_id)
    asked = [(e["kind"], actor(e)) for e in events if e["kind"].endswith("_requested")]
    assert asked == [
        ("project.stop_requested", bob.account_id),
        ("project.start_requested", alice.account_id),
    ]


async def test_a_command_that_starts_the_project_names_who_ran_it(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    url = f"/api/v2/projects/{project_id}"
    status, body = await alice.call("POST", url + "/exec", {"command": "echo hi"})
    assert status == 200, body

    started = [e for e in await log_of(alice, project_id) if e["kind"].endswith("_requested")]
    assert [(e["kind"], actor(e), e["data"].get("reason")) for e in started] == [
        ("project.start_requested", alice.account_id, "ran a command")
    ]
    await alice.call("POST", url + "/stop")
    await wait_state(alice, project_id, "stopped")


async def test_the_culler_stop_is_logged_without_an_account(
    make_user: Any, database_url: str
) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    await alice.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(alice, project_id, "running")
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE projects SET last_active = now() - interval '2 hours' WHERE project_id = %s",
            (project_id,),
        )
    assert (project_id, "stop") in await alice.client.app[CULLER].sweep()
    await wait_state(alice, project_id, "stopped")

    newest = (await log_of(alice, project_id))[0]
    assert newest["kind"] == "project.stopped" and newest["account"] is None
    assert newest["data"] == {"reason": "idle for 120 minutes", "idle_minutes": 120}


async def test_a_failure_is_logged_with_its_error(make_user: Any, database_url: str) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE projects SET state = 'starting', state_changed = now() - interval '1 hour'"
            " WHERE project_id = %s",
            (project_id,),
        )
    assert (project_id, "fail") in await alice.client.app[CULLER].sweep()
    newest = (await log_of(alice, project_id))[0]
    assert newest["kind"] == "project.failed" and newest["account"] is None
    assert newest["data"]["error"].startswith("stuck starting for")
