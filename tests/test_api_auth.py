"""Sign up, sign in, sign out and sessions through the JSON API, on a real hub."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import sign_up, unique_email

Client = TestClient[Any, Any]


async def test_sign_up_returns_account_and_session(client: Client) -> None:
    user = await sign_up(client)
    resp = await client.get("/api/v2/account")
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "account_id": user["account_id"],
        "email": user["email"],
        "name": "Test User",
        "is_admin": False,
    }


async def test_session_cookie_is_httponly_lax_with_30_day_expiry(client: Client) -> None:
    resp = await client.post(
        "/api/v2/auth/sign-up",
        json={"email": unique_email(), "password": "long enough", "name": "A"},
    )
    cookie = resp.cookies["cocalc_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == str(30 * 86400)
    assert not cookie["secure"]


async def test_account_needs_authentication(client: Client) -> None:
    resp = await client.get("/api/v2/account")
    assert resp.status == 401
    assert (await resp.json())["error"]


async def test_sign_in_and_sign_out(make_client: Any) -> None:
    first = await make_client()
    user = await sign_up(first)
    second = await make_client()
    resp = await second.post(
        "/api/v2/auth/sign-in", json={"email": user["email"].upper(), "password": user["password"]}
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["account_id"] == user["account_id"]
    assert (await second.get("/api/v2/account")).status == 200

    resp = await second.post("/api/v2/auth/sign-out", headers={"X-CSRF-Token": body["csrf_token"]})
    assert resp.status == 204
    assert (await second.get("/api/v2/account")).status == 401
    # The first session is untouched by the second one's sign-out.
    assert (await first.get("/api/v2/account")).status == 200


async def test_signed_out_session_cookie_is_revoked_server_side(client: Client) -> None:
    user = await sign_up(client)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))["cocalc_session"].value
    await client.post("/api/v2/auth/sign-out", headers={"X-CSRF-Token": user["csrf_token"]})
    resp = await client.get("/api/v2/account", cookies={"cocalc_session": token})
    assert resp.status == 401


async def test_unknown_email_and_wrong_password_get_the_same_answer(client: Client) -> None:
    user = await sign_up(client)
    client.session.cookie_jar.clear()
    wrong = await client.post(
        "/api/v2/auth/sign-in", json={"email": user["email"], "password": "not the password"}
    )
    unknown = await client.post(
        "/api/v2/auth/sign-in", json={"email": unique_email(), "password": "not the password"}
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()


async def test_sign_in_is_rate_limited_per_account(make_client: Any) -> None:
    client = await make_client(login_attempts=3)
    user = await sign_up(client)
    client.session.cookie_jar.clear()
    for _ in range(3):
        resp = await client.post(
            "/api/v2/auth/sign-in", json={"email": user["email"], "password": "wrong password"}
        )
        assert resp.status == 401
    resp = await client.post(
        "/api/v2/auth/sign-in", json={"email": user["email"], "password": user["password"]}
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "too many" in (await resp.json())["error"]


async def test_sign_in_is_rate_limited_per_address(make_client: Any) -> None:
    client = await make_client(login_attempts=1)  # five per address
    for _ in range(5):
        resp = await client.post(
            "/api/v2/auth/sign-in", json={"email": unique_email(), "password": "whatever1"}
        )
        assert resp.status == 401
    resp = await client.post(
        "/api/v2/auth/sign-in", json={"email": unique_email(), "password": "whatever1"}
    )
    assert resp.status == 429


async def test_passwords_are_stored_as_argon2_and_sessions_hashed(
    client: Client, database_url: str
) -> None:
    user = await sign_up(client, password="a secret password")
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))["cocalc_session"].value
    with psycopg.connect(database_url) as conn:
        (pw_hash,) = conn.execute(
            "SELECT password_hash FROM accounts WHERE email = %s", (user["email"],)
        ).fetchone()
        hashes = [
            row[0]
            for row in conn.execute(
                "SELECT token_hash FROM sessions WHERE account_id = %s", (user["account_id"],)
            )
        ]
    assert pw_hash.startswith("$argon2id$")
    assert "a secret password" not in pw_hash
    assert len(hashes) == 1
    assert token.encode() not in bytes(hashes[0])


async def test_expired_session_is_refused(client: Client, database_url: str) -> None:
    user = await sign_up(client)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE sessions SET expires = now() - interval '1 second' WHERE account_id = %s",
            (user["account_id"],),
        )
    assert (await client.get("/api/v2/account")).status == 401


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"email": "not-an-email", "password": "long enough", "name": "A"}, 400, "email"),
        ({"password": "long enough", "name": "A"}, 400, "email is required"),
        ({"email": "x@example.org", "password": "short", "name": "A"}, 400, "at least 8"),
        ({"email": "x@example.org", "password": "long enough"}, 400, "name is required"),
        ({"email": "x@example.org", "password": "long enough", "name": "n" * 101}, 400, "name"),
        ({"email": "x@example.org", "password": 12345678, "name": "A"}, 400, "password"),
        (
            {"email": "a" * 300 + "@example.org", "password": "long enough", "name": "A"},
            400,
            "email",
        ),
    ],
)
async def test_sign_up_rejects_bad_input(
    client: Client, database_url: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    with psycopg.connect(database_url) as conn:
        before = conn.execute("SELECT count(*) FROM accounts").fetchone()
    resp = await client.post("/api/v2/auth/sign-up", json=body)
    assert resp.status == status
    assert fragment in (await resp.json())["error"]
    assert "cocalc_session" not in resp.cookies
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == before


async def test_duplicate_email_is_409_and_changes_nothing(client: Client) -> None:
    user = await sign_up(client)
    client.session.cookie_jar.clear()
    resp = await client.post(
        "/api/v2/auth/sign-up",
        json={"email": user["email"].upper(), "password": "another password", "name": "B"},
    )
    assert resp.status == 409
    assert "already exists" in (await resp.json())["error"]
    resp = await client.post(
        "/api/v2/auth/sign-in", json={"email": user["email"], "password": user["password"]}
    )
    assert resp.status == 200


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"string"', b"\xff\xfe"],
)
async def test_malformed_json_is_400(client: Client, raw: bytes) -> None:
    resp = await client.post(
        "/api/v2/auth/sign-up", data=raw, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("request body")


async def test_oversized_body_is_413(client: Client) -> None:
    resp = await client.post(
        "/api/v2/auth/sign-up",
        data=b'{"name": "' + b"x" * 200_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert "too large" in (await resp.json())["error"] or "larger" in (await resp.json())["error"]


async def test_unknown_api_path_and_wrong_method_are_json_errors(client: Client) -> None:
    resp = await client.get("/api/v2/nothing-here")
    assert resp.status == 404
    assert await resp.json() == {"error": "not found"}
    resp = await client.get("/api/v2/auth/sign-in")
    assert resp.status == 405
    assert "error" in await resp.json()


async def test_sign_up_can_be_closed(make_client: Any) -> None:
    client = await make_client(allow_sign_up=False)
    resp = await client.post(
        "/api/v2/auth/sign-up",
        json={"email": unique_email(), "password": "long enough", "name": "A"},
    )
    assert resp.status == 403
    assert "closed" in (await resp.json())["error"]
