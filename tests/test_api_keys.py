"""API keys: created, listed by prefix, used as Bearer credentials, revoked; never leaked."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from aiohttp.test_utils import TestClient

from tests.conftest import sign_up

Client = TestClient[Any, Any]


async def create_key(client: Client, csrf: str, name: str = "laptop") -> dict[str, Any]:
    resp = await client.post(
        "/api/v2/api-keys", json={"name": name}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_use_list_and_revoke(client: Client) -> None:
    user = await sign_up(client)
    created = await create_key(client, user["csrf_token"])
    assert created["key"].startswith("ck_")
    assert created["key"].startswith(created["prefix"])

    auth = {"Authorization": f"Bearer {created['key']}"}  # the header wins over the cookie
    resp = await client.get("/api/v2/account", headers=auth)
    assert resp.status == 200
    assert (await resp.json())["account_id"] == user["account_id"]

    listing = await (await client.get("/api/v2/api-keys")).json()
    assert [k["name"] for k in listing["api_keys"]] == ["laptop"]
    assert listing["api_keys"][0]["prefix"] == created["prefix"]
    assert created["key"] not in str(listing)

    resp = await client.delete(
        f"/api/v2/api-keys/{created['id']}", headers={"X-CSRF-Token": user["csrf_token"]}
    )
    assert resp.status == 204
    resp = await client.get("/api/v2/account", headers=auth)
    assert resp.status == 401  # at once, in the process that revoked it


async def test_revocation_reaches_another_hub_process(make_client: Any) -> None:
    """Two hubs on one database: the second drops its cached key on the NOTIFY."""
    first, second = await make_client(), await make_client()
    user = await sign_up(first)
    created = await create_key(first, user["csrf_token"])
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert (await second.get("/api/v2/account", headers=auth)).status == 200  # now cached
    resp = await first.delete(
        f"/api/v2/api-keys/{created['id']}", headers={"X-CSRF-Token": user["csrf_token"]}
    )
    assert resp.status == 204
    deadline = asyncio.get_running_loop().time() + 2.0  # well under the 5 s cache lifetime
    while (status := (await second.get("/api/v2/account", headers=auth)).status) != 401:
        assert status == 200
        assert asyncio.get_running_loop().time() < deadline, "revocation not seen in 2 s"
        await asyncio.sleep(0.01)


async def test_key_can_act_without_csrf_token(client: Client, make_client: Any) -> None:
    user = await sign_up(client)
    created = await create_key(client, user["csrf_token"])
    api = await make_client()
    resp = await api.post(
        "/api/v2/api-keys",
        json={"name": "made by a script"},
        headers={"Authorization": f"Bearer {created['key']}"},
    )
    assert resp.status == 201


async def test_keys_are_stored_hashed(client: Client, database_url: str) -> None:
    user = await sign_up(client)
    created = await create_key(client, user["csrf_token"])
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT prefix, key_hash FROM api_keys WHERE account_id = %s", (user["account_id"],)
        ).fetchall()
    assert len(rows) == 1
    prefix, key_hash = rows[0]
    assert prefix == created["prefix"]
    assert created["key"].encode() not in bytes(key_hash)
    assert len(bytes(key_hash)) == 32


async def test_cannot_revoke_another_accounts_key(make_client: Any) -> None:
    alice_client, bob_client = await make_client(), await make_client()
    alice = await sign_up(alice_client)
    bob = await sign_up(bob_client)
    key = await create_key(alice_client, alice["csrf_token"])
    resp = await bob_client.delete(
        f"/api/v2/api-keys/{key['id']}", headers={"X-CSRF-Token": bob["csrf_token"]}
    )
    assert resp.status == 404
    listing = await (await alice_client.get("/api/v2/api-keys")).json()
    assert len(listing["api_keys"]) == 1
    bob_listing = await (await bob_client.get("/api/v2/api-keys")).json()
    assert bob_listing["api_keys"] == []


async def test_invalid_bearer_is_401_even_with_a_valid_cookie(client: Client) -> None:
    await sign_up(client)
    for header in ("Bearer ck_not-a-real-key", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer x"):
        resp = await client.get("/api/v2/account", headers={"Authorization": header})
        assert resp.status == 401, header
        assert "error" in await resp.json()


async def test_bad_key_requests(client: Client) -> None:
    user = await sign_up(client)
    csrf = {"X-CSRF-Token": user["csrf_token"]}
    resp = await client.post("/api/v2/api-keys", json={}, headers=csrf)
    assert resp.status == 400
    assert "name" in (await resp.json())["error"]
    resp = await client.post("/api/v2/api-keys", json={"name": "x" * 500}, headers=csrf)
    assert resp.status == 400
    resp = await client.delete("/api/v2/api-keys/not-a-uuid", headers=csrf)
    assert resp.status == 404
    resp = await client.post("/api/v2/api-keys", json={"name": "anon"})
    assert resp.status == 403  # a cookie without the CSRF token
