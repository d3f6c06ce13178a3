"""Projects and collaborators through the API, and the one access check for all of them."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import sign_up, unique_email

Client = TestClient[Any, Any]


class User:
    """A signed-in API client with its CSRF token, so calls read like the API."""

    def __init__(self, client: Client, info: dict[str, Any]) -> None:
        self.client = client
        self.info = info
        self.headers = {"X-CSRF-Token": info["csrf_token"]}

    @property
    def account_id(self) -> str:
        return str(self.info["account_id"])

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        resp = await self.client.request(method, path, json=body, headers=self.headers)
        data = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, data


@pytest.fixture
async def make_user(make_client: Any) -> Any:
    async def make(**settings: Any) -> User:
        client = await make_client(**settings)
        return User(client, await sign_up(client))

    return make


async def new_project(user: User, title: str = "Thesis") -> str:
    status, body = await user.call("POST", "/api/v2/projects", {"title": title})
    assert status == 201, body
    return str(body["project_id"])


async def test_create_list_get_edit(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice, "  Linear   algebra ")
    status, body = await alice.call("GET", "/api/v2/projects")
    assert status == 200
    assert [p["title"] for p in body["projects"]] == ["Linear algebra"]
    status, project = await alice.call("GET", f"/api/v2/projects/{project_id}")
    assert status == 200
    assert project["state"] == "stopped"
    assert project["role"] == "owner"
    assert project["quota"]["memory_mb"] > 0
    assert [c["account_id"] for c in project["collaborators"]] == [alice.account_id]
    status, project = await alice.call(
        "PATCH", f"/api/v2/projects/{project_id}", {"title": "LA", "description": "week 1"}
    )
    assert status == 200
    assert (project["title"], project["description"]) == ("LA", "week 1")


async def test_search_hide_and_sort(make_user: Any) -> None:
    alice = await make_user()
    first = await new_project(alice, "Alpha 100%")
    second = await new_project(alice, "Beta")
    _, body = await alice.call("GET", "/api/v2/projects")
    assert [p["project_id"] for p in body["projects"]] == [second, first]  # newest first
    _, body = await alice.call("GET", "/api/v2/projects?search=100%25")
    assert [p["title"] for p in body["projects"]] == ["Alpha 100%"]
    _, body = await alice.call("GET", "/api/v2/projects?search=_")
    assert body["projects"] == []  # LIKE wildcards are literal
    await alice.call("PATCH", f"/api/v2/projects/{first}", {"hidden": True})
    _, body = await alice.call("GET", "/api/v2/projects")
    assert [p["title"] for p in body["projects"]] == ["Beta"]
    _, body = await alice.call("GET", "/api/v2/projects?hidden=true")
    assert [p["title"] for p in body["projects"]] == ["Alpha 100%"]
    _, body = await alice.call("GET", "/api/v2/projects?hidden=all")
    assert len(body["projects"]) == 2
    status, _ = await alice.call("GET", "/api/v2/projects?hidden=maybe")
    assert status == 400


async def test_collaborators_add_remove_leave(make_user: Any) -> None:
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    project_id = await new_project(alice)
    url = f"/api/v2/projects/{project_id}"
    assert (await bob.call("GET", url))[0] == 404

    status, body = await alice.call("POST", url + "/collaborators", {"email": bob.info["email"]})
    assert status == 201 and str(body["account_id"]) == bob.account_id
    status, _ = await alice.call("POST", url + "/collaborators", {"email": bob.info["email"]})
    assert status == 409
    status, body = await alice.call("POST", url + "/collaborators", {"email": unique_email()})
    assert status == 404 and "no account" in body["error"]

    status, project = await bob.call("GET", url)
    assert status == 200 and project["role"] == "collaborator"
    assert all("email" not in c for c in project["collaborators"])  # owners see emails
    # A collaborator edits but does not manage people or delete.
    assert (await bob.call("PATCH", url, {"title": "Ours"}))[0] == 200
    assert (await bob.call("POST", url + "/collaborators", {"email": carol.info["email"]}))[
        0
    ] == 403
    assert (await bob.call("DELETE", f"{url}/collaborators/{alice.account_id}"))[0] == 403
    assert (await bob.call("DELETE", url))[0] == 403
    # The owner cannot leave; a collaborator can.
    assert (await alice.call("DELETE", f"{url}/collaborators/{alice.account_id}"))[0] == 400
    assert (await bob.call("DELETE", f"{url}/collaborators/{bob.account_id}"))[0] == 204
    assert (await bob.call("GET", url))[0] == 404
    _, body = await bob.call("GET", "/api/v2/projects")
    assert body["projects"] == []


async def test_owner_removes_collaborator(make_user: Any) -> None:
    alice, bob = await make_user(), await make_user()
    project_id = await new_project(alice)
    url = f"/api/v2/projects/{project_id}"
    await alice.call("POST", url + "/collaborators", {"email": bob.info["email"]})
    assert (await alice.call("DELETE", f"{url}/collaborators/{bob.account_id}"))[0] == 204
    assert (await bob.call("GET", url))[0] == 404
    assert (await alice.call("DELETE", f"{url}/collaborators/{bob.account_id}"))[0] == 404


async def test_soft_delete_hides_project_but_keeps_the_row(
    make_user: Any, database_url: str
) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    assert (await alice.call("DELETE", f"/api/v2/projects/{project_id}"))[0] == 204
    assert (await alice.call("GET", f"/api/v2/projects/{project_id}"))[0] == 404
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT deleted IS NOT NULL FROM projects WHERE project_id = %s", (project_id,)
        ).fetchone()
    assert row == (True,)


async def test_admin_reaches_every_project_and_sets_quotas(
    make_user: Any, make_client: Any
) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    admin_email = unique_email("admin")
    admin_hub = await make_client(admin_email=admin_email)
    admin = User(admin_hub, await sign_up(admin_hub, email=admin_email))
    url = f"/api/v2/projects/{project_id}"
    status, project = await admin.call("GET", url)
    assert status == 200 and project["role"] == "admin"
    status, project = await admin.call(
        "PATCH", url, {"quota": {"memory_mb": 4000, "network": False}}
    )
    assert status == 200
    assert project["quota"]["memory_mb"] == 4000 and project["quota"]["network"] is False
    assert (await alice.call("PATCH", url, {"quota": {"memory_mb": 9000}}))[0] == 403
    status, body = await admin.call("PATCH", url, {"quota": {"memory_mb": "lots"}})
    assert status == 400 and "memory_mb" in body["error"]
    status, body = await admin.call("PATCH", url, {"quota": {"gpus": 8}})
    assert status == 400 and "unknown" in body["error"]
    _, project = await alice.call("GET", url)
    assert project["quota"]["memory_mb"] == 4000  # the failed changes changed nothing


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "title is required"),
        ({"title": "   "}, "title is required"),
        ({"title": "x" * 201}, "at most"),
        ({"title": 5}, "title"),
        ({"title": "ok", "description": ["no"]}, "description"),
    ],
)
async def test_create_rejects_bad_input(make_user: Any, body: Any, fragment: str) -> None:
    alice = await make_user()
    status, data = await alice.call("POST", "/api/v2/projects", body)
    assert status == 400 and fragment in data["error"]
    _, listing = await alice.call("GET", "/api/v2/projects?hidden=all")
    assert listing["projects"] == []


async def test_unknown_and_malformed_project_ids_are_404(make_user: Any) -> None:
    alice = await make_user()
    for project_id in (uuid.uuid4(), "not-a-uuid", "1"):
        status, body = await alice.call("GET", f"/api/v2/projects/{project_id}")
        assert status == 404 and body == {"error": "no such project"}


async def test_every_project_route_checks_access(make_user: Any, make_client: Any) -> None:
    """Walk the route table: each /api/v2/projects/{project_id}… route refuses an anonymous
    caller (401) and a signed-in stranger (403/404), whatever the method and body."""
    alice, stranger = await make_user(), await make_user()
    project_id = await new_project(alice)
    anonymous = await make_client()
    before = (await alice.call("GET", f"/api/v2/projects/{project_id}"))[1]
    routes = [
        (route.method, route.resource.canonical)
        for route in alice.client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and "{project_id}" in route.resource.canonical
    ]
    assert len(routes) >= 5
    for method, pattern in routes:
        path = pattern.replace("{project_id}", project_id)
        path = re.sub(r"\{[^}]+\}", alice.account_id, path)
        resp = await anonymous.request(method, path, json={"title": "x", "email": "a@b.co"})
        assert resp.status == 401, (method, pattern)
        status, _ = await stranger.call(method, path, {"title": "x", "email": "a@b.co"})
        assert status in (403, 404), (method, pattern, status)
    after = (await alice.call("GET", f"/api/v2/projects/{project_id}"))[1]
    assert after == before


async def test_admin_changes_default_quotas(make_user: Any, make_client: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    admin_email = unique_email("admin")
    admin_hub = await make_client(admin_email=admin_email)
    admin = User(admin_hub, await sign_up(admin_hub, email=admin_email))
    status, defaults = await admin.call("GET", "/api/v2/admin/default-quotas")
    assert status == 200 and defaults["cpu_oc"] > 0 and defaults["idle_timeout"] > 0
    assert (await alice.call("GET", "/api/v2/admin/default-quotas"))[0] == 403
    assert (await alice.call("PATCH", "/api/v2/admin/default-quotas", {"cpu": 2}))[0] == 403
    status, changed = await admin.call(
        "PATCH", "/api/v2/admin/default-quotas", {"idle_timeout": 600, "mem_oc": 2}
    )
    assert status == 200 and changed["idle_timeout"] == 600 and changed["mem_oc"] == 2
    _, project = await alice.call("GET", f"/api/v2/projects/{project_id}")
    assert project["quota"]["idle_timeout"] == 600
    status, body = await admin.call("PATCH", "/api/v2/admin/default-quotas", {"cpu_oc": 0})
    assert status == 400 and "cpu_oc" in body["error"]
    # A project's own quota wins over the defaults.
    await admin.call("PATCH", f"/api/v2/projects/{project_id}", {"quota": {"idle_timeout": 7200}})
    _, project = await alice.call("GET", f"/api/v2/projects/{project_id}")
    assert project["quota"]["idle_timeout"] == 7200
    await admin.call("PATCH", "/api/v2/admin/default-quotas", {"idle_timeout": 3600, "mem_oc": 5})
