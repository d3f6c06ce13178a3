"""The admin page's forms (no JavaScript): site settings, sign-up tokens, a project's
quota, the search with a state filter; errors shown on the page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.test_admin_api import new_admin, new_member
from tests.test_projects_api import User, new_project


@pytest.fixture
async def admin(make_client: Any) -> User:
    return await new_admin(make_client)


async def _post(admin: User, path: str, **form: str) -> Any:
    data = {"csrf_token": admin.headers["X-CSRF-Token"], **form}
    return await admin.client.post(path, data=data, allow_redirects=False)


async def test_site_form(admin: User) -> None:
    resp = await _post(admin, "/admin/site", site_name="Group hub", sign_up="token")
    assert resp.status == 303 and resp.headers["Location"] == "/admin?done=site"
    html = await (await admin.client.get("/admin?done=site")).text()
    assert "Site settings saved." in html and 'value="Group hub"' in html
    assert re.search(r'value="token" checked', html)
    resp = await _post(admin, "/admin/site", site_name=" ", sign_up="open")
    assert resp.status == 400 and "site name is required" in await resp.text()
    resp = await _post(admin, "/admin/site", site_name="Group hub", sign_up="open")
    assert resp.status == 303


async def test_token_form_shows_the_token_once(admin: User) -> None:
    resp = await _post(admin, "/admin/signup-tokens", description="lab", max_uses="3")
    html = await resp.text()
    match = re.search(r'data-testid="new-signup-token">(st_[^<]+)<', html)
    assert resp.status == 200 and match is not None
    token = match.group(1)
    html = await (await admin.client.get("/admin")).text()
    assert token not in html and token[:13] in html and "0 / 3" in html
    resp = await _post(admin, "/admin/signup-tokens", max_uses="many")
    assert resp.status == 400 and "Maximum uses must be a whole number" in await resp.text()
    resp = await _post(admin, f"/admin/signup-tokens/{token[:13]}/revoke")
    assert resp.status == 303 and resp.headers["Location"] == "/admin?done=revoked"
    resp = await _post(admin, f"/admin/signup-tokens/{token[:13]}/revoke")
    assert resp.status == 404 and "no such sign-up token" in await resp.text()


async def test_project_quota_form_and_state_filter(admin: User, make_client: Any) -> None:
    user = await new_member(admin, make_client)
    project_id = await new_project(user, "Quota me")
    resp = await _post(
        admin, f"/admin/projects/{project_id}/quota", idle_timeout="90", memory_mb="3000"
    )
    assert resp.status == 303 and resp.headers["Location"] == "/admin?done=project-quota"
    _, project = await user.call("GET", f"/api/v2/projects/{project_id}")
    assert project["quota"]["idle_timeout"] == 5400 and project["quota"]["memory_mb"] == 3000
    html = await (await admin.client.get("/admin?search=quota&state=stopped")).text()
    assert "Quota me" in html and "Idle timeout (minutes): 90" in html
    html = await (await admin.client.get("/admin?search=quota&state=running")).text()
    assert "Quota me" not in html
    resp = await _post(admin, f"/admin/projects/{project_id}/quota", idle_timeout="0.1")
    assert resp.status == 400 and "idle_timeout must be between" in await resp.text()
    resp = await _post(admin, "/admin/projects/not-a-uuid/quota", idle_timeout="90")
    assert resp.status == 404


async def test_forms_are_for_admins_only(admin: User, make_client: Any) -> None:
    user = await new_member(admin, make_client)
    for path in ("/admin/site", "/admin/signup-tokens", f"/admin/accounts/{admin.account_id}/ban"):
        resp = await user.client.post(
            path,
            data={"csrf_token": user.headers["X-CSRF-Token"], "banned": "true"},
            allow_redirects=False,
        )
        assert resp.status == 404, path
    assert (await admin.call("GET", "/api/v2/account"))[0] == 200  # not banned
