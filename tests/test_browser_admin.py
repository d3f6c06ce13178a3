"""The admin page in a real Chromium: the default idle timeout reaches a new project, live
stats change without a reload, a ban ends a user's session and is told at sign-in, and
sign-up by token (with the site name in the top bar).

Skipped like tests/test_browser.py when Chromium or Playwright is missing (a failure
under CI). A failing test leaves screenshots (see tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest

from tests.conftest import unique_email
from tests.test_browser import (
    DESKTOP,
    PHONE,
    Console,
    check_layout,
    fill_sign_in,
    fill_sign_up,
    new_page,
)
from tests.test_browser_projects import create_project, open_tab, signed_up

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
async def admin_hub(make_client: Any) -> tuple[str, str]:
    """A hub whose admin is whoever signs up with the returned email."""
    email = unique_email("admin")
    client = await make_client(admin_email=email)
    return str(client.make_url("/")).rstrip("/"), email


async def admin_page(browser: Browser, console: Console, hub: str, email: str) -> Page:
    page = await new_page(browser, console)
    await page.goto(f"{hub}/sign-up")
    await fill_sign_up(page, name="Root", email=email)
    await page.get_by_test_id("nav-admin").click()
    await expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    return page


async def test_default_idle_timeout_reaches_a_new_project_and_stats_are_live(
    admin_hub: tuple[str, str], browser: Browser
) -> None:
    hub, email = admin_hub
    console = Console()
    admin = await admin_page(browser, console, hub, email)
    idle = admin.get_by_label("Idle timeout (minutes)")
    await expect(idle).to_have_value("60")
    await idle.fill("45")
    await admin.get_by_role("button", name="Save defaults").click()
    await expect(admin.get_by_test_id("message")).to_have_text("Default quotas saved.")
    await expect(admin.get_by_label("Idle timeout (minutes)")).to_have_value("45")

    accounts = admin.locator('[data-stat="accounts"]')
    before = int(await accounts.inner_text())
    user = await signed_up(browser, Console(), hub, "Grace")
    await create_project(user, hub, "Idle timeout check")
    await open_tab(user, "Settings")
    await expect(user.get_by_test_id("quota")).to_contain_text("Stops when idle for45 min")
    # The admin page, never reloaded, counts the new account.
    await expect(accounts).to_have_text(str(before + 1), timeout=15_000)
    await expect(admin.locator('[data-stat="projects"]')).not_to_have_text("0")
    assert console.errors == [], "\n".join(console.errors)


async def test_a_ban_ends_the_session_and_is_told_at_sign_in(
    admin_hub: tuple[str, str], browser: Browser
) -> None:
    hub, email = admin_hub
    console = Console()
    admin = await admin_page(browser, console, hub, email)
    user = await signed_up(browser, Console(), hub, "Mallory")
    await user.goto(f"{hub}/projects")
    victim = user.email  # type: ignore[attr-defined]
    await admin.get_by_label("Search accounts and projects").fill(victim)
    await admin.get_by_role("button", name="Search").click()
    await admin.get_by_role("button", name=f"Ban {victim}", exact=True).click()
    dialog = admin.get_by_role("dialog")
    await expect(dialog).to_contain_text(f"Ban {victim}?")
    await dialog.get_by_role("button", name="Ban", exact=True).click()
    await expect(admin.get_by_test_id("message")).to_contain_text("signed out everywhere")
    row = admin.get_by_test_id("accounts").locator(f'tr[data-email="{victim}"]')
    await expect(row).to_contain_text("banned")

    # The user's open page no longer works: the next navigation asks for a sign-in.
    await user.get_by_test_id("nav-projects").click()
    await expect(user).to_have_url(re.compile(r"/sign-in\?next=/projects"))
    await fill_sign_in(user, email=victim)
    await expect(user.get_by_test_id("form-error")).to_contain_text("this account has been banned")

    await row.get_by_role("button", name=f"Unban {victim}", exact=True).click()
    await expect(admin.get_by_test_id("message")).to_have_text("The account may sign in again.")
    await fill_sign_in(user, email=victim)
    await expect(user.get_by_test_id("nav-account")).to_have_text("Mallory")
    assert console.errors == [], "\n".join(console.errors)


async def test_sign_up_by_token_and_the_site_name(
    admin_hub: tuple[str, str], browser: Browser
) -> None:
    hub, email = admin_hub
    console = Console()
    admin = await admin_page(browser, console, hub, email)
    visitor = await new_page(browser, Console())
    site = admin.get_by_test_id("site-settings")
    await site.get_by_label("Site name").fill("Number <Theory> Lab")
    await site.get_by_label("By token").check()
    await site.get_by_role("button", name="Save site settings").click()
    await expect(admin.get_by_test_id("message")).to_have_text("Site settings saved.")
    await expect(admin.get_by_test_id("site-name")).to_have_text("Number <Theory> Lab")
    await expect(admin).to_have_title("Admin · Number <Theory> Lab")

    form = admin.get_by_test_id("new-token-form")
    await form.get_by_label("Description").fill("seminar")
    await form.get_by_label("Maximum uses").fill("1")
    await form.get_by_role("button", name="Create token").click()
    token = (await admin.get_by_test_id("new-signup-token").inner_text()).strip()
    assert token.startswith("st_")
    await expect(admin.get_by_test_id("signup-tokens")).to_contain_text("0 / 1")

    await visitor.goto(f"{hub}/sign-up")
    await expect(visitor.get_by_role("heading")).to_have_text(
        "Create an account on Number <Theory> Lab"
    )
    await visitor.get_by_label("Sign-up token").fill("st_wrong")
    await fill_sign_up(visitor, name="Emmy", email=unique_email("emmy"))
    await expect(visitor.get_by_test_id("form-error")).to_have_text(
        "this sign-up token is not valid"
    )
    await visitor.get_by_label("Sign-up token").fill(token)
    await fill_sign_up(visitor, name="Emmy", email=unique_email("emmy"))
    await expect(visitor.get_by_test_id("nav-account")).to_have_text("Emmy")

    await admin.reload()
    await expect(admin.get_by_test_id("signup-tokens")).to_contain_text("1 / 1")
    await site.get_by_label("Closed").check()
    await site.get_by_role("button", name="Save site settings").click()
    closed = await new_page(browser, Console())
    await closed.goto(f"{hub}/sign-up")
    await expect(closed.get_by_test_id("sign-up-closed")).to_be_visible()
    await site.get_by_label("Open").check()  # as it was, for the next test on this database
    await site.get_by_role("button", name="Save site settings").click()
    await expect(admin.get_by_test_id("message")).to_have_text("Site settings saved.")
    assert console.errors == [], "\n".join(console.errors)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_admin_page_fits_the_screen(
    admin_hub: tuple[str, str], browser: Browser, viewport: dict[str, int]
) -> None:
    hub, email = admin_hub
    console = Console()
    page = await new_page(browser, console, viewport=viewport)
    await page.goto(f"{hub}/sign-up")
    await fill_sign_up(page, name="Root", email=email)
    await page.goto(f"{hub}/admin")
    await expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    await check_layout(page, "admin", viewport)
    assert console.errors == []
