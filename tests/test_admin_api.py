"""The admin API: stats, accounts, projects, the admin flag; admins only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import sign_up, unique_email
from tests.test_projects_api import User, new_project


async def new_admin(make_client: Any, **settings: Any) -> User:
    """An admin (by COCALC_ADMIN_EMAIL) on a new hub."""
    email = unique_email("admin")
    client = await make_client(admin_email=email, **settings)
    return User(client, await sign_up(client, email=email))


async def new_member(admin: User, make_client: Any) -> User:
    """Someone else, signed up on the admin's hub."""
    client = await make_client(same_hub_as=admin.client)
    return User(client, await sign_up(client))


@pytest.fixture
async def admin(make_client: Any) -> User:
    return await new_admin(make_client)


@pytest.fixture
async def user(admin: User, make_client: Any) -> User:
    return await new_member(admin, make_client)


async def test_only_admins_get_in(user: User) -> None:
    for method, path, body in (
        ("GET", "/api/v2/admin/stats", None),
        ("GET", "/api/v2/admin/accounts", None),
        ("GET", "/api/v2/admin/projects", None),
        ("PATCH", f"/api/v2/admin/accounts/{user.account_id}", {"is_admin": True}),
    ):
        status, _ = await user.call(method, path, body)
        assert status == 403, path
    _, me = await user.call("GET", "/api/v2/account")
    assert me["is_admin"] is False


async def test_stats_accounts_and_projects(admin: User, user: User) -> None:
    project_id = await new_project(user, "Needle in a haystack")
    status, stats = await admin.call("GET", "/api/v2/admin/stats")
    assert status == 200
    assert stats["accounts"] >= 2 and stats["projects"] >= 1
    assert stats["projects_by_state"]["stopped"] >= 1 and stats["active_sessions"] >= 2
    _, found = await admin.call("GET", f"/api/v2/admin/accounts?search={user.info['email']}")
    assert [a["account_id"] for a in found["accounts"]] == [user.account_id]
    _, found = await admin.call("GET", "/api/v2/admin/projects?search=needle&state=stopped")
    assert [p["project_id"] for p in found["projects"]] == [project_id]
    _, found = await admin.call("GET", "/api/v2/admin/accounts?search=%25")
    assert found["accounts"] == []  # wildcards are literal


async def test_admin_flag_takes_effect_at_once(admin: User, user: User) -> None:
    path = f"/api/v2/admin/accounts/{user.account_id}"
    assert (await admin.call("PATCH", path, {"is_admin": "yes"}))[0] == 400
    assert (await admin.call("PATCH", path, {"is_admin": True}))[0] == 204
    _, me = await user.call("GET", "/api/v2/account")
    assert me["is_admin"] is True  # no stale cached principal
    assert (await admin.call("PATCH", path, {"is_admin": False}))[0] == 204
    _, me = await user.call("GET", "/api/v2/account")
    assert me["is_admin"] is False
    own = f"/api/v2/admin/accounts/{admin.account_id}"
    status, body = await admin.call("PATCH", own, {"is_admin": False})
    assert status == 400 and "own" in body["error"]
    status, _ = await admin.call(
        "PATCH", "/api/v2/admin/accounts/00000000-0000-0000-0000-000000000000", {"is_admin": True}
    )
    assert status == 404


async def test_admin_page(admin: User, user: User) -> None:
    assert (await user.client.get("/admin")).status == 404  # not an admin: nothing here
    resp = await admin.client.get("/admin")
    html = await resp.text()
    assert resp.status == 200 and "Administration" in html and user.info["email"] in html
    assert 'href="/admin"' in html  # the nav shows admins the way in
    # Make the user an admin through the form (CSRF token from the page).
    resp = await admin.client.post(
        f"/admin/accounts/{user.account_id}/admin",
        data={"csrf_token": admin.headers["X-CSRF-Token"], "is_admin": "true"},
        allow_redirects=False,
    )
    assert resp.status == 303
    _, me = await user.call("GET", "/api/v2/account")
    assert me["is_admin"] is True
    # Default quotas through the form; bad numbers are refused with a message.
    resp = await admin.client.post(
        "/admin/quotas",
        data={"csrf_token": admin.headers["X-CSRF-Token"], "idle_timeout": "lots"},
    )
    assert resp.status == 400 and "Idle timeout (minutes) must be a number" in await resp.text()
    resp = await admin.client.post(
        "/admin/quotas",
        data={"csrf_token": admin.headers["X-CSRF-Token"], "idle_timeout": "30"},  # minutes
        allow_redirects=False,
    )
    assert resp.status == 303
    _, quotas = await admin.call("GET", "/api/v2/admin/default-quotas")
    assert quotas["idle_timeout"] == 1800
    await admin.call("PATCH", "/api/v2/admin/default-quotas", {"idle_timeout": 3600})
