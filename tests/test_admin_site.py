"""Site settings (name, sign-up open/closed/by token), sign-up tokens and live stats
through the admin API: admins only, bad input refused with a message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from tests.conftest import unique_email
from tests.test_admin_api import admin, user
from tests.test_projects_api import User, new_project

__all__ = ["admin", "user"]  # the fixtures, shared with the admin API tests

SITE = "/api/v2/admin/site-settings"
TOKENS = "/api/v2/admin/signup-tokens"


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 5.0
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", SITE),
        ("PATCH", SITE),
        ("GET", TOKENS),
        ("POST", TOKENS),
        ("DELETE", TOKENS + "/st_abcdefghij"),
    ],
)
async def test_only_admins(user: User, make_client: Any, method: str, path: str) -> None:
    status, body = await user.call(method, path, {})
    assert status == 403 and body["error"] == "admins only"
    anonymous = await make_client(same_hub_as=user.client)
    assert (await anonymous.request(method, path, json={})).status == 401


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "give site_name and/or sign_up"),
        ({"site_name": ""}, "site name is required"),
        ({"site_name": "x" * 61}, "at most 60"),
        ({"site_name": "a\u0007b"}, "control characters"),
        ({"site_name": 7}, "site name is required"),
        ({"sign_up": "maybe"}, "open, closed, token"),
        ({"colour": "red"}, "unknown site setting"),
    ],
)
async def test_site_settings_bad_input(admin: User, body: dict[str, Any], fragment: str) -> None:
    status, answer = await admin.call("PATCH", SITE, body)
    assert status == 400 and fragment in answer["error"]


async def test_site_name_is_shown_escaped_and_reaches_another_hub(
    admin: User, make_client: Any, database_url: str
) -> None:
    other_hub = await make_client()
    status, body = await admin.call("PATCH", SITE, {"site_name": "  <b>Maths</b>   Lab "})
    assert status == 200
    assert body["site_name"] == "<b>Maths</b> Lab" and body["sign_up"] == "open"
    assert body["sign_up_locked"] is None
    for path in ("/", "/sign-in", "/sign-up"):
        html = await (await admin.client.get(path)).text()
        assert "&lt;b&gt;Maths&lt;/b&gt; Lab</span>" in html  # the nav
        assert "<b>Maths" not in html
    title = "<title>Welcome · &lt;b&gt;Maths&lt;/b&gt; Lab</title>"
    assert title in await (await admin.client.get("/")).text()

    async def seen() -> bool:
        return "Maths&lt;/b&gt; Lab" in await (await other_hub.get("/sign-up")).text()

    await _eventually(seen, "the other hub never showed the new site name")
    with psycopg.connect(database_url) as conn:  # a change behind the hub's back, with NOTIFY
        conn.execute("UPDATE site_settings SET value = '\"Physics\"' WHERE name = 'site_name'")
        conn.execute("NOTIFY cocalc_site_settings, 'site_name'")

    async def renamed() -> bool:
        return "<title>Welcome · Physics</title>" in await (await admin.client.get("/")).text()

    await _eventually(renamed, "a NOTIFY did not reload the site name")
    assert (await admin.call("GET", SITE))[1]["site_name"] == "Physics"


async def test_closed_sign_up(admin: User, make_client: Any) -> None:
    assert (await admin.call("PATCH", SITE, {"sign_up": "closed"}))[0] == 200
    anonymous = await make_client(same_hub_as=admin.client)
    resp = await anonymous.post(
        "/api/v2/auth/sign-up",
        json={"email": unique_email(), "password": "correct horse", "name": "N"},
    )
    assert resp.status == 403 and "closed" in (await resp.json())["error"]
    html = await (await anonymous.get("/sign-up")).text()
    assert "Sign-up is closed" in html and 'data-testid="sign-up-form"' not in html
    assert (await admin.call("PATCH", SITE, {"sign_up": "open"}))[0] == 200
    resp = await anonymous.post(
        "/api/v2/auth/sign-up",
        json={"email": unique_email(), "password": "correct horse", "name": "N"},
    )
    assert resp.status == 201


async def test_sign_up_by_token(admin: User, make_client: Any, database_url: str) -> None:
    assert (await admin.call("PATCH", SITE, {"sign_up": "token"}))[0] == 200
    status, created = await admin.call(
        "POST", TOKENS, {"description": "course", "max_uses": 2, "expires_days": 7}
    )
    assert status == 201 and created["token"].startswith(created["prefix"])
    token = created["token"]

    async def attempt(value: str | None) -> tuple[int, str]:
        anonymous = await make_client(same_hub_as=admin.client)
        body = {"email": unique_email(), "password": "correct horse", "name": "N"}
        if value is not None:
            body["token"] = value
        resp = await anonymous.post("/api/v2/auth/sign-up", json=body)
        return resp.status, (await resp.json()).get("error", "")

    status, error = await attempt(None)
    assert status == 403 and error == "sign-up needs a token on this server; ask an admin for one"
    assert await attempt("st_nonsense") == (403, "this sign-up token is not valid")
    assert (await attempt(token))[0] == 201
    assert (await attempt(f"  {token} "))[0] == 201
    assert await attempt(token) == (403, "this sign-up token has been used up")
    html = await (await (await make_client(same_hub_as=admin.client)).get("/sign-up")).text()
    assert 'name="token"' in html

    _, listed = await admin.call("GET", TOKENS)
    (row,) = [t for t in listed["tokens"] if t["prefix"] == created["prefix"]]
    assert row["uses"] == 2 and row["max_uses"] == 2 and row["description"] == "course"
    assert row["usable"] is False and row["expires"] is not None and "token" not in row

    _, expiring = await admin.call("POST", TOKENS, {})
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE signup_tokens SET expires = now() - interval '1 second' WHERE prefix = %s",
            (expiring["prefix"],),
        )
    assert await attempt(expiring["token"]) == (403, "this sign-up token has expired")

    _, revoked = await admin.call("POST", TOKENS, {"description": "to revoke"})
    assert (await admin.call("DELETE", f"{TOKENS}/{revoked['prefix']}"))[0] == 204
    assert (await admin.call("DELETE", f"{TOKENS}/{revoked['prefix']}"))[0] == 404
    assert await attempt(revoked["token"]) == (403, "this sign-up token is not valid")
    with psycopg.connect(database_url) as conn:
        kinds = {r[0] for r in conn.execute("SELECT kind FROM events WHERE kind LIKE 'signup%'")}
    assert kinds == {"signup_token.created", "signup_token.revoked"}
    assert (await admin.call("PATCH", SITE, {"sign_up": "open"}))[0] == 200


async def test_a_token_last_use_goes_to_one_sign_up_only(admin: User, make_client: Any) -> None:
    assert (await admin.call("PATCH", SITE, {"sign_up": "token"}))[0] == 200
    _, created = await admin.call("POST", TOKENS, {"max_uses": 1})
    clients = [await make_client(same_hub_as=admin.client) for _ in range(5)]
    bodies = [
        {"email": unique_email(), "password": "long enough", "name": "N", "token": created["token"]}
        for _ in clients
    ]
    responses = await asyncio.gather(
        *(c.post("/api/v2/auth/sign-up", json=b) for c, b in zip(clients, bodies, strict=True))
    )
    assert sorted(r.status for r in responses) == [201, 403, 403, 403, 403]
    _, listed = await admin.call("GET", TOKENS)
    assert [t["uses"] for t in listed["tokens"] if t["prefix"] == created["prefix"]] == [1]
    assert (await admin.call("PATCH", SITE, {"sign_up": "open"}))[0] == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"max_uses": 0}, "max_uses must be a whole number from 1"),
        ({"max_uses": "3"}, "max_uses must be a whole number"),
        ({"max_uses": 2.5}, "max_uses must be a whole number"),
        ({"expires_days": -1}, "expires_days must be a whole number"),
        ({"expires_days": True}, "expires_days must be a whole number"),
        ({"description": ["x"]}, "description must be text"),
        ({"description": "x" * 201}, "at most 200"),
    ],
)
async def test_token_bad_input(admin: User, body: dict[str, Any], fragment: str) -> None:
    status, answer = await admin.call("POST", TOKENS, body)
    assert status == 400 and fragment in answer["error"]


async def test_the_start_up_setting_holds_until_an_admin_chooses(
    make_client: Any, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM site_settings WHERE name = 'sign_up'")
    hub = await make_client(allow_sign_up=False)
    body = {"email": unique_email(), "password": "correct horse", "name": "N"}
    assert (await hub.post("/api/v2/auth/sign-up", json=body)).status == 403
    with psycopg.connect(database_url) as conn:  # what an admin's choice does, on any hub
        conn.execute("INSERT INTO site_settings (name, value) VALUES ('sign_up', '\"open\"')")
        conn.execute("NOTIFY cocalc_site_settings, 'sign_up'")

    async def opened() -> bool:
        return 'data-testid="sign-up-form"' in await (await hub.get("/sign-up")).text()

    await _eventually(opened, "the stored choice did not override the start-up setting")
    assert (await hub.post("/api/v2/auth/sign-up", json=body)).status == 201


async def test_connected_clients_are_counted(admin: User, user: User) -> None:
    project_id = await new_project(user)
    _, before = await admin.call("GET", "/api/v2/admin/stats")
    stream = await user.client.get(f"/api/v2/projects/{project_id}/progress?follow=1")
    assert stream.status == 200
    await stream.content.readline()  # the first event: the stream is open and counted
    _, during = await admin.call("GET", "/api/v2/admin/stats")
    assert during["connected_clients"] == before["connected_clients"] + 1
    assert during["connections_by_kind"]["progress"] >= 1 and during["connected_accounts"] >= 1
    stream.close()

    async def closed() -> bool:
        _, after = await admin.call("GET", "/api/v2/admin/stats")
        return bool(after["connected_clients"] == before["connected_clients"])

    await _eventually(closed, "a closed stream is still counted")
