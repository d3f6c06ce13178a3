"""The hub's session cookie: host-only, and `__Host-` prefixed whenever browsers reach the
hub over HTTPS, so no page of another host can set or shadow it (cookie tossing)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import unique_email

pytestmark = pytest.mark.timeout(60)


async def test_over_https_the_session_cookie_is_host_prefixed(make_client: Any) -> None:
    # A TLS-terminating proxy in front: browsers speak HTTPS, the hub plain HTTP behind it.
    client = await make_client(base_url="https://127.0.0.1:8443")
    resp = await client.post(
        "/api/v2/auth/sign-up",
        json={"email": unique_email(), "password": "correct horse", "name": "T"},
        headers={"Cookie": "cocalc_session=left-by-an-http-hub"},
    )
    assert resp.status == 201
    set_cookies = resp.headers.getall("Set-Cookie")
    session = next(c for c in set_cookies if c.startswith("__Host-cocalc_session="))
    attributes = [a.strip().lower() for a in session.split(";")[1:]]
    assert "secure" in attributes and "path=/" in attributes and "httponly" in attributes
    assert not any(a.startswith("domain") for a in attributes)
    assert any(c.startswith("cocalc_session=") and "Max-Age=0" in c for c in set_cookies)
    token = session.split(";", 1)[0].split("=", 1)[1]
    csrf = (await resp.json())["csrf_token"]

    def ask(cookie: str) -> Any:
        return client.get("/api/v2/account", headers={"Cookie": cookie})

    assert (await ask(f"__Host-cocalc_session={token}")).status == 200
    # The unprefixed name (which a page of a sibling host could set) is not read at all.
    assert (await ask(f"cocalc_session={token}")).status == 401
    tossed = f"cocalc_session=tossed; __Host-cocalc_session={token}"
    assert (await ask(tossed)).status == 200
    resp = await client.post(
        "/api/v2/api-keys",
        json={"name": "k"},
        headers={"Cookie": tossed, "X-CSRF-Token": csrf},
    )
    assert resp.status == 201  # the CSRF token still belongs to the real session


async def test_over_http_the_session_cookie_keeps_its_name(make_client: Any) -> None:
    client = await make_client()
    resp = await client.post(
        "/api/v2/auth/sign-up",
        json={"email": unique_email(), "password": "correct horse", "name": "T"},
    )
    assert resp.status == 201
    session = next(c for c in resp.headers.getall("Set-Cookie") if "cocalc_session" in c)
    assert session.startswith("cocalc_session=") and "Domain" not in session
    assert "Secure" not in session
