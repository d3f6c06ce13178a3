"""Banning accounts: sign-in refused with a message, sessions and API keys dead at once
(on every hub), events recorded; admins only, never themselves."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from cocalc_k8s.keys import ACCOUNTS
from tests.conftest import sign_up
from tests.test_admin_api import admin, user
from tests.test_projects_api import User

__all__ = ["admin", "user"]  # the fixtures, shared with the admin API tests


async def _key(user: User) -> str:
    status, body = await user.call("POST", "/api/v2/api-keys", {"name": "script"})
    assert status == 201, body
    return str(body["key"])


async def _with_key(user: User, key: str) -> tuple[int, Any]:
    resp = await user.client.get("/api/v2/account", headers={"Authorization": f"Bearer {key}"})
    return resp.status, await resp.json()


async def _sign_in(user: User, password: str = "correct horse") -> tuple[int, Any]:
    user.client.session.cookie_jar.clear()  # a stale session cookie would need a CSRF token
    resp = await user.client.post(
        "/api/v2/auth/sign-in", json={"email": user.info["email"], "password": password}
    )
    return resp.status, await resp.json()


async def test_ban_ends_sessions_and_keys_and_unban_restores_sign_in(
    admin: User, user: User, database_url: str
) -> None:
    key = await _key(user)
    assert (await user.call("GET", "/api/v2/account"))[0] == 200  # cached principal now
    path = f"/api/v2/admin/accounts/{user.account_id}"
    assert (await admin.call("PATCH", path, {"banned": True}))[0] == 204

    assert (await user.call("GET", "/api/v2/account"))[0] == 401
    status, body = await _with_key(user, key)
    assert status == 401 and "banned" in body["error"]
    status, body = await _sign_in(user)
    assert status == 403 and "banned" in body["error"]
    status, body = await _sign_in(user, "wrong password")
    assert status == 401 and "banned" not in body["error"]  # nothing told without the password
    with psycopg.connect(database_url) as conn:
        sessions = conn.execute(
            "SELECT count(*) FROM sessions WHERE account_id = %s", (user.account_id,)
        ).fetchone()
        event = conn.execute(
            "SELECT account_id, data FROM events WHERE kind = 'account.banned'"
            " AND data->>'target' = %s",
            (user.account_id,),
        ).fetchone()
    assert sessions == (0,)
    assert event is not None and str(event[0]) == admin.account_id
    _, found = await admin.call("GET", f"/api/v2/admin/accounts?search={user.info['email']}")
    assert found["accounts"][0]["banned"] is not None
    _, stats = await admin.call("GET", "/api/v2/admin/stats")
    assert stats["banned_accounts"] == 1

    assert (await admin.call("PATCH", path, {"banned": False}))[0] == 204
    assert (await _sign_in(user))[0] == 200
    assert (await _with_key(user, key))[0] == 200  # keys come back with the unban
    _, found = await admin.call("GET", f"/api/v2/admin/accounts?search={user.info['email']}")
    assert found["accounts"][0]["banned"] is None


async def test_ban_is_seen_at_once_by_another_hub(
    admin: User, make_client: Any, database_url: str
) -> None:
    other_hub = await make_client()  # its own process state: principal cache, listener
    # Entries there outlive the test, so only the NOTIFY can end the cached credentials.
    other_hub.app[ACCOUNTS].cache.ttl = 3600
    victim = User(other_hub, await sign_up(other_hub))
    key = await _key(victim)
    assert (await _with_key(victim, key))[0] == 200  # cached on the other hub
    path = f"/api/v2/admin/accounts/{victim.account_id}"
    assert (await admin.call("PATCH", path, {"banned": True}))[0] == 204
    deadline = time.monotonic() + 30.0  # a bound for a hung test, not a timing claim
    while (await _with_key(victim, key))[0] != 401:
        assert time.monotonic() < deadline, "the other hub still accepts the banned key"
        await asyncio.sleep(0.02)
    assert (await victim.call("GET", "/api/v2/account"))[0] == 401


async def test_banning_another_admin_is_allowed_and_recorded(
    admin: User, user: User, database_url: str
) -> None:
    path = f"/api/v2/admin/accounts/{user.account_id}"
    assert (await admin.call("PATCH", path, {"is_admin": True}))[0] == 204
    assert (await admin.call("PATCH", path, {"banned": True}))[0] == 204
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT data->>'target_is_admin' FROM events WHERE kind = 'account.banned'"
            " AND data->>'target' = %s",
            (user.account_id,),
        ).fetchone()
    assert row == ("true",)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"banned": "yes"}, "banned must be true or false"),
        ({}, "give is_admin and/or banned"),
        ({"colour": "red"}, "give is_admin and/or banned"),
        ({"banned": True, "is_admin": 1}, "is_admin must be true or false"),
    ],
)
async def test_ban_bad_input_is_400(
    admin: User, user: User, body: dict[str, Any], fragment: str
) -> None:
    status, answer = await admin.call("PATCH", f"/api/v2/admin/accounts/{user.account_id}", body)
    assert status == 400 and fragment in answer["error"]
    assert (await user.call("GET", "/api/v2/account"))[0] == 200  # nothing half-applied


async def test_who_may_ban(admin: User, user: User) -> None:
    status, body = await admin.call(
        "PATCH", f"/api/v2/admin/accounts/{admin.account_id}", {"banned": True}
    )
    assert status == 400 and "yourself" in body["error"]
    status, _ = await user.call(
        "PATCH", f"/api/v2/admin/accounts/{admin.account_id}", {"banned": True}
    )
    assert status == 403
    user.client.session.cookie_jar.clear()
    resp = await user.client.patch(
        f"/api/v2/admin/accounts/{admin.account_id}", json={"banned": True}
    )
    assert resp.status == 401
    unknown = "/api/v2/admin/accounts/00000000-0000-0000-0000-000000000000"
    assert (await admin.call("PATCH", unknown, {"banned": True}))[0] == 404
    assert (await admin.call("PATCH", "/api/v2/admin/accounts/nope", {"banned": True}))[0] == 404
    assert (await admin.call("GET", "/api/v2/account"))[0] == 200  # still signed in


async def test_ban_through_the_admin_page_and_sign_in_page_message(admin: User, user: User) -> None:
    csrf = admin.headers["X-CSRF-Token"]
    resp = await admin.client.post(
        f"/admin/accounts/{user.account_id}/ban",
        data={"csrf_token": csrf, "banned": "true"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/admin?done=banned"
    html = await (await admin.client.get("/admin?done=banned")).text()
    assert "signed out everywhere" in html and ">banned<" in html and ">Unban" in html
    resp = await admin.client.post(
        f"/admin/accounts/{admin.account_id}/ban", data={"csrf_token": csrf, "banned": "true"}
    )
    assert resp.status == 400 and "cannot ban yourself" in await resp.text()

    user.client.session.cookie_jar.clear()
    resp = await user.client.post(
        "/sign-in",
        data={"email": user.info["email"], "password": "correct horse"},
        headers={"Origin": str(user.client.make_url("")).rstrip("/")},
    )
    page = await resp.text()
    assert resp.status == 403 and "this account has been banned" in page
