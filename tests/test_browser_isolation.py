"""In a real Chromium: a hub that finds no bubblewrap tells its admin why sign-up is
closed (and offers no other mode), and tells a second visitor that sign-up is closed."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique_email
from tests.test_browser import Console, fill_sign_up, new_page
from tests.test_browser_admin import admin_page
from tests.test_isolation import database_url

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, expect

pytestmark = pytest.mark.browser
__all__ = ["database_url"]  # a database of each test's own: its first account is the first


async def test_the_admin_page_says_why_sign_up_is_closed(
    make_client: Any, browser: Browser, tmp_path: Path
) -> None:
    email = unique_email("admin")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", str(tmp_path))  # no bubblewrap anywhere the hub looks
        client = await make_client(admin_email=email)
    hub = str(client.make_url("/")).rstrip("/")
    console = Console()
    admin = await admin_page(browser, console, hub, email)
    await expect(admin.get_by_test_id("isolation")).to_contain_text("cannot be sandboxed here")
    await expect(admin.get_by_test_id("isolation")).to_contain_text("--trusted-users")
    await expect(admin.get_by_test_id("sign-up-locked")).to_contain_text("one account only")
    await expect(
        admin.get_by_role("radio", name="Open: anyone who reaches the site")
    ).to_be_disabled()
    await expect(admin.get_by_role("radio", name="Closed: admins create accounts")).to_be_checked()
    stranger = await new_page(browser, console)
    await stranger.goto(f"{hub}/sign-up")
    await expect(stranger.get_by_test_id("sign-up-closed")).to_be_visible()
    assert console.errors == []


async def test_a_sign_up_that_raced_the_page_gets_the_reason(
    make_client: Any, browser: Browser, tmp_path: Path
) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", str(tmp_path))
        client = await make_client()
    hub = str(client.make_url("/")).rstrip("/")
    console = Console()
    late = await new_page(browser, console)
    await late.goto(f"{hub}/sign-up")  # the form, while no account exists yet
    first = await new_page(browser, console)
    await first.goto(f"{hub}/sign-up")
    await fill_sign_up(first, name="First", email=unique_email())
    await expect(first.get_by_role("heading", name="Projects")).to_be_visible()
    await fill_sign_up(late, name="Second", email=unique_email())
    await expect(late.get_by_role("alert")).to_contain_text("serves one account only")
