"""CSRF: cookie-authenticated state changes need the hub's Origin or the session's token."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import sign_up, unique_email

Client = TestClient[Any, Any]


async def key_names(client: Client) -> list[str]:
    body = await (await client.get("/api/v2/api-keys")).json()
    return [k["name"] for k in body["api_keys"]]


async def test_same_origin_request_is_accepted(client: Client) -> None:
    await sign_up(client)
    origin = str(client.make_url("/")).rstrip("/")
    resp = await client.post("/api/v2/api-keys", json={"name": "ok"}, headers={"Origin": origin})
    assert resp.status == 201
    assert await key_names(client) == ["ok"]


async def test_foreign_origin_is_refused_even_with_token(client: Client) -> None:
    user = await sign_up(client)
    for origin in ("https://evil.example", "http://127.0.0.1:1", "null"):
        resp = await client.post(
            "/api/v2/api-keys",
            json={"name": "evil"},
            headers={"Origin": origin, "X-CSRF-Token": user["csrf_token"]}
            if origin != "null"
            else {"Origin": origin},
        )
        assert resp.status == 403, origin
    assert await key_names(client) == []


async def test_other_port_on_same_host_is_a_foreign_origin(client: Client) -> None:
    await sign_up(client)
    url = client.make_url("/")
    other = f"{url.scheme}://{url.host}:{url.port + 1}"
    resp = await client.post("/api/v2/api-keys", json={"name": "x"}, headers={"Origin": other})
    assert resp.status == 403


async def test_missing_or_wrong_token_is_refused(client: Client) -> None:
    user = await sign_up(client)
    resp = await client.post("/api/v2/api-keys", json={"name": "x"})
    assert resp.status == 403
    assert "CSRF" in (await resp.json())["error"]
    resp = await client.post(
        "/api/v2/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": "0" * 40}
    )
    assert resp.status == 403
    resp = await client.patch(
        "/api/v2/account", json={"name": "Changed"}, headers={"X-CSRF-Token": "nope"}
    )
    assert resp.status == 403
    account = await (await client.get("/api/v2/account")).json()
    assert account["name"] == "Test User"
    resp = await client.patch(
        "/api/v2/account", json={"name": "Changed"}, headers={"X-CSRF-Token": user["csrf_token"]}
    )
    assert resp.status == 200


async def test_token_of_another_session_is_refused(make_client: Any) -> None:
    a, b = await make_client(), await make_client()
    await sign_up(a)
    other = await sign_up(b)
    resp = await a.post(
        "/api/v2/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": other["csrf_token"]}
    )
    assert resp.status == 403


async def test_foreign_origin_cannot_sign_in(client: Client) -> None:
    resp = await client.post(
        "/api/v2/auth/sign-up",
        json={"email": unique_email(), "password": "long enough", "name": "A"},
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status == 403


async def test_configured_base_url_is_a_trusted_origin(make_client: Any) -> None:
    client = await make_client(
        base_url="http://cocalc.example.org:8080",
        content_url="http://*.projects.example.org:8081",
    )
    await sign_up(client)
    resp = await client.post(
        "/api/v2/api-keys",
        json={"name": "behind a proxy"},
        headers={"Origin": "http://cocalc.example.org:8080"},
    )
    assert resp.status == 201
