"""The server-rendered pages over real HTTP: content, form errors, redirects, CSRF, escaping."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import sign_up, unique_email

Client = TestClient[Any, Any]
PASSWORD = "correct horse"


def csrf_of(html: str) -> str:
    """The CSRF token a page carries in its <meta name="csrf-token">."""
    match = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


async def csrf_token(client: Client) -> str:
    resp = await client.get("/account")
    assert resp.status == 200
    return csrf_of(await resp.text())


async def form_sign_up(client: Client, **fields: str) -> Any:
    data = {"name": "Ada", "email": unique_email(), "password": PASSWORD, "next": "/"}
    data.update(fields)
    return await client.post("/sign-up", data=data, allow_redirects=False)


async def api_key_names(client: Client) -> list[str]:
    resp = await client.get("/api/v2/api-keys")
    assert resp.status == 200
    return [key["name"] for key in (await resp.json())["api_keys"]]


# --- every page renders ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "Collaborative computing"),
        ("/sign-up", 'data-testid="sign-up-form"'),
        ("/sign-in", 'data-testid="sign-in-form"'),
    ],
)
async def test_anonymous_pages_render(client: Client, path: str, expected: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert expected in html
    assert 'href="/static/style.css' in html


async def test_account_page_renders_for_signed_in_user(client: Client) -> None:
    user = await sign_up(client)
    resp = await client.get("/account")
    assert resp.status == 200
    html = await resp.text()
    assert "Account settings" in html
    assert user["email"] in html
    assert "No API keys yet" in html
    assert 'data-testid="sign-out"' in html
    # The page's title is its name, and each section is on the page once.
    assert re.search(r"<title>Account · [^<]*</title>", html), html[:500]
    assert html.count('id="ssh-keys-heading"') == 1


async def test_landing_greets_signed_in_user(client: Client) -> None:
    await sign_up(client)
    html = await (await client.get("/")).text()
    assert "Welcome back, Test User" in html
    assert "Create an account" not in html


async def test_pages_carry_security_headers(client: Client) -> None:
    for path in ("/", "/sign-up", "/sign-in", "/static/style.css"):
        resp = await client.get(path)
        assert resp.status == 200, path
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "style-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
    resp = await client.get("/sign-in")
    assert resp.headers["Cache-Control"] == "no-store"


async def test_templates_have_no_inline_script_or_style(client: Client) -> None:
    """The CSP forbids them, so they would silently do nothing in a browser."""
    await sign_up(client)
    for path in ("/", "/account"):
        html = await (await client.get(path)).text()
        assert "<script>" not in html and "<style" not in html and " style=" not in html


# --- sign up ----------------------------------------------------------------------------


async def test_sign_up_form_signs_in_and_redirects(client: Client) -> None:
    email = unique_email()
    resp = await form_sign_up(client, email=email, next="/account")
    assert resp.status == 303
    assert resp.headers["Location"] == "/account"
    html = await (await client.get("/account")).text()
    assert email in html


async def test_sign_up_short_password_keeps_input(client: Client) -> None:
    email = unique_email()
    resp = await form_sign_up(client, email=email, name="Grace", password="short")
    assert resp.status == 400
    html = await resp.text()
    assert "password must have at least 8 characters" in html
    assert 'data-testid="form-error"' in html
    assert f'value="{email}"' in html
    assert 'value="Grace"' in html
    assert 'value="short"' not in html  # the password is never echoed


async def test_sign_up_duplicate_email_is_a_conflict(client: Client) -> None:
    user = await sign_up(client)
    client.session.cookie_jar.clear()  # a stranger, not the signed-in owner
    other = await form_sign_up(client, email=user["email"])
    assert other.status == 409
    html = await other.text()
    assert "already exists" in html
    assert f'value="{user["email"]}"' in html


async def test_sign_up_invalid_email_is_escaped_in_the_form(client: Client) -> None:
    resp = await form_sign_up(client, email='"><script>alert(1)</script>')
    assert resp.status == 400
    html = await resp.text()
    assert "not a valid email address" in html
    assert "<script>alert(1)" not in html
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html


async def test_sign_up_page_redirects_signed_in_user(client: Client) -> None:
    await sign_up(client)
    resp = await client.get("/sign-up", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/account"


async def test_closed_sign_up_says_so(make_client: Any) -> None:
    client = await make_client(allow_sign_up=False)
    html = await (await client.get("/sign-up")).text()
    assert "Sign-up is closed" in html
    assert "sign-up-form" not in html
    resp = await form_sign_up(client)
    assert resp.status == 403
    assert "sign-up is closed" in await resp.text()


# --- sign in / sign out -----------------------------------------------------------------


async def test_sign_in_wrong_password_keeps_email(make_client: Any) -> None:
    user = await sign_up(await make_client())
    client = await make_client()
    resp = await client.post(
        "/sign-in",
        data={"email": user["email"], "password": "not the password"},
        allow_redirects=False,
    )
    assert resp.status == 401
    html = await resp.text()
    assert "wrong email or password" in html
    assert 'role="alert"' in html
    assert f'value="{user["email"]}"' in html
    assert "not the password" not in html
    assert (await client.get("/api/v2/account")).status == 401


async def test_sign_in_and_out_through_forms(make_client: Any) -> None:
    user = await sign_up(await make_client())
    client = await make_client()
    resp = await client.post(
        "/sign-in",
        data={"email": user["email"], "password": PASSWORD, "next": "/account"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/account"
    assert (await client.get("/api/v2/account")).status == 200

    token = await csrf_token(client)
    resp = await client.post("/sign-out", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/"
    assert (await client.get("/api/v2/account")).status == 401


async def test_sign_in_page_redirects_signed_in_user_to_next(client: Client) -> None:
    await sign_up(client)
    resp = await client.get("/sign-in?next=/account", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/account"


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example", "/\\evil.example", "evil", ""]
)
async def test_next_only_follows_same_site_paths(make_client: Any, target: str) -> None:
    user = await sign_up(await make_client())
    client = await make_client()
    page = await (await client.get("/sign-in", params={"next": target})).text()
    assert 'name="next" value="/"' in page
    resp = await client.post(
        "/sign-in",
        data={"email": user["email"], "password": PASSWORD, "next": target},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/"


async def test_next_is_kept_across_a_failed_sign_in(client: Client) -> None:
    page = await (await client.get("/sign-in?next=/account")).text()
    assert 'name="next" value="/account"' in page
    assert 'href="/sign-up?next=/account"' in page
    resp = await client.post(
        "/sign-in", data={"email": unique_email(), "password": "whatever1", "next": "/account"}
    )
    assert resp.status == 401
    assert 'name="next" value="/account"' in await resp.text()


async def test_account_redirects_anonymous_user_to_sign_in(client: Client) -> None:
    resp = await client.get("/account", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/sign-in?next=/account"


async def test_account_actions_redirect_anonymous_user(client: Client) -> None:
    resp = await client.post("/account/api-keys", data={"name": "x"}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/sign-in?next=/account"


# --- account settings -------------------------------------------------------------------


async def test_api_key_is_shown_once_and_listed(client: Client) -> None:
    await sign_up(client)
    token = await csrf_token(client)
    resp = await client.post("/account/api-keys", data={"name": "laptop", "csrf_token": token})
    assert resp.status == 200
    html = await resp.text()
    key = re.search(r'data-testid="new-api-key">([^<]+)</code>', html)
    assert key
    assert await api_key_names(client) == ["laptop"]

    page = await (await client.get("/account")).text()
    assert "laptop" in page
    assert key.group(1) not in page  # shown once
    resp = await client.get("/api/v2/account", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert resp.status == 200


async def test_api_key_revoke_through_form(client: Client) -> None:
    await sign_up(client)
    token = await csrf_token(client)
    await client.post("/account/api-keys", data={"name": "old", "csrf_token": token})
    key_id = (await (await client.get("/api/v2/api-keys")).json())["api_keys"][0]["id"]
    resp = await client.post(
        f"/account/api-keys/{key_id}/revoke", data={"csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/account?done=revoked"
    assert await api_key_names(client) == []
    html = await (await client.get("/account?done=revoked")).text()
    assert "The API key was revoked." in html


async def test_empty_key_name_is_an_error_on_the_page(client: Client) -> None:
    await sign_up(client)
    token = await csrf_token(client)
    resp = await client.post("/account/api-keys", data={"name": " ", "csrf_token": token})
    assert resp.status == 400
    assert "name is required" in await resp.text()
    assert await api_key_names(client) == []


async def test_password_change_through_form(client: Client) -> None:
    user = await sign_up(client)
    token = await csrf_token(client)
    resp = await client.post(
        "/account/password",
        data={"password": "wrong password", "new_password": "brand new pw", "csrf_token": token},
    )
    assert resp.status == 403
    assert "the current password is wrong" in await resp.text()
    resp = await client.post(
        "/account/password",
        data={"password": user["password"], "new_password": "brand new pw", "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 303
    html = await (await client.get(resp.headers["Location"])).text()
    assert "Your password was changed." in html


async def test_display_name_is_html_escaped(client: Client) -> None:
    await sign_up(client)
    token = await csrf_token(client)
    evil = "<script>alert(1)</script>"
    resp = await client.post(
        "/account/name", data={"name": evil, "csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 303
    assert (await (await client.get("/api/v2/account")).json())["name"] == evil
    for path in ("/", "/account?done=name"):
        html = await (await client.get(path)).text()
        assert evil not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
    assert "Your name was saved." in html


# --- cross-site request forgery ---------------------------------------------------------


async def test_form_post_without_csrf_token_or_origin_is_refused(client: Client) -> None:
    await sign_up(client)
    resp = await client.post("/account/api-keys", data={"name": "forged"})
    assert resp.status == 403
    assert "CSRF" in unescape(await resp.text())
    resp = await client.post("/account/api-keys", data={"name": "forged", "csrf_token": "nope"})
    assert resp.status == 403
    assert await api_key_names(client) == []


async def test_form_post_with_foreign_origin_is_refused(client: Client) -> None:
    await sign_up(client)
    token = await csrf_token(client)
    for origin in ("https://evil.example", "null"):
        resp = await client.post(
            "/account/api-keys",
            data={"name": "forged", "csrf_token": token if origin != "null" else ""},
            headers={"Origin": origin},
        )
        assert resp.status == 403, origin
    resp = await client.post(
        "/account/name",
        data={"name": "Mallory", "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status == 403
    assert await api_key_names(client) == []
    assert (await (await client.get("/api/v2/account")).json())["name"] == "Test User"


async def test_sign_out_without_csrf_token_keeps_session(client: Client) -> None:
    await sign_up(client)
    resp = await client.post("/sign-out", allow_redirects=False)
    assert resp.status == 403
    assert (await client.get("/api/v2/account")).status == 200


async def test_form_post_with_own_origin_is_accepted(client: Client) -> None:
    await sign_up(client)
    origin = str(client.make_url("/")).rstrip("/")
    resp = await client.post(
        "/account/api-keys", data={"name": "same-origin"}, headers={"Origin": origin}
    )
    assert resp.status == 200
    assert await api_key_names(client) == ["same-origin"]


async def test_login_csrf_from_foreign_origin_is_refused(make_client: Any) -> None:
    user = await sign_up(await make_client())
    client = await make_client()
    resp = await client.post(
        "/sign-in",
        data={"email": user["email"], "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert "cocalc_session" not in resp.cookies
