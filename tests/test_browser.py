"""The pages in a real Chromium (Playwright) against a real hub on 127.0.0.1.

Skipped when Chromium or Playwright is missing, except under CI (env var CI set),
where a missing browser is a failure. Set COCALC_SHOTS=<dir> to keep screenshots.
"""

from __future__ import annotations

import os
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import unique_email

try:
    from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
except ImportError:  # pragma: no cover - reported by the fixture below
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser
if async_playwright is not None:
    expect.set_options(timeout=10_000)

TIMEOUT_MS = 10_000
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# Registered before any page script runs (outside the page's CSP), so a CSP violation is
# reported as a console error even where Chromium would only count it.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
});
"""


UNLABELLED = """() => [...document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button, a[href]")]
  .filter((el) => el.getClientRects().length > 0 && !el.closest("[aria-hidden=true]"))
  .filter((el) => !(el.labels?.length || el.getAttribute("aria-label")
    || el.getAttribute("aria-labelledby") || el.title || el.textContent.trim()
    || (el.type === "submit" && el.value)))
  .map((el) => el.outerHTML.slice(0, 160))"""


async def layout_problems(page: Page) -> list[str]:
    """What breaks the layout rules on the current page: sideways scrolling, or a visible
    control (input, button, link) that assistive technology could not name."""
    problems = []
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    if overflow > 0:
        problems.append(f"scrolls sideways by {overflow}px")
    problems += [f"no accessible name: {html}" for html in await page.evaluate(UNLABELLED)]
    return problems


async def check_layout(page: Page, name: str, viewport: dict[str, int]) -> None:
    """No layout problems on the current page; with COCALC_SHOTS set, a full-page
    screenshot of it, light and dark, is saved there."""
    width = "desktop" if viewport is DESKTOP else "phone"
    assert await layout_problems(page) == [], f"{name} at {width} width"
    shots = os.environ.get("COCALC_SHOTS")
    if shots:
        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            await page.screenshot(path=f"{shots}/{name}-{width}-{scheme}.png", full_page=True)
        await page.emulate_media(color_scheme="light")


class Console:
    """Everything a page reports as an error: console errors, CSP violations, exceptions."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        return page

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning") or "Content Security Policy" in message.text:
            self.errors.append(f"{message.type}: {message.text} ({message.location})")


@pytest.fixture
async def hub(client: TestClient[Any, Any]) -> str:
    """The base URL of a hub on 127.0.0.1, without the trailing slash."""
    return str(client.make_url("/")).rstrip("/")


async def new_page(browser: Browser, console: Console, **context: Any) -> Page:
    ctx = await browser.new_context(**context)
    ctx.set_default_timeout(TIMEOUT_MS)
    await ctx.add_init_script(REPORT_CSP_VIOLATIONS)
    return console.watch(await ctx.new_page())


async def api_status(base: str, key: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/api/v2/account", headers={"Authorization": f"Bearer {key}"}) as resp,
    ):
        return resp.status


async def fill_sign_up(page: Page, *, name: str, email: str, password: str = PASSWORD) -> None:
    form = page.get_by_test_id("sign-up-form")
    await form.get_by_label("Name").fill(name)
    await form.get_by_label("Email").fill(email)
    await form.get_by_label("Password").fill(password)
    await form.get_by_role("button", name="Create account").click()


async def fill_sign_in(page: Page, *, email: str, password: str = PASSWORD) -> None:
    form = page.get_by_test_id("sign-in-form")
    await form.get_by_label("Email").fill(email)
    await form.get_by_label("Password").fill(password)
    await form.get_by_role("button", name="Sign in").click()


async def test_sign_up_sign_in_and_api_key_lifecycle(browser: Browser, hub: str) -> None:
    console = Console()
    page = await new_page(browser, console)
    email = unique_email("browser")

    await page.goto(f"{hub}/")
    await page.get_by_role("link", name="Create an account").click()
    await expect(page).to_have_url(f"{hub}/sign-up")
    await fill_sign_up(page, name="Ada Lovelace", email=email)
    await expect(page).to_have_url(f"{hub}/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Welcome back, Ada Lovelace")
    await expect(page.get_by_test_id("nav-account")).to_have_text("Ada Lovelace")

    await page.get_by_test_id("sign-out").click()
    nav = page.get_by_role("navigation")
    await expect(nav.get_by_role("link", name="Sign in")).to_be_visible()
    await expect(page.get_by_test_id("nav-account")).to_have_count(0)

    await nav.get_by_role("link", name="Sign in").click()
    await fill_sign_in(page, email=email.upper())
    await expect(page.get_by_role("heading", level=1)).to_have_text("Welcome back, Ada Lovelace")

    await page.get_by_test_id("nav-account").click()
    await expect(page).to_have_url(f"{hub}/account")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Account settings")
    await expect(page.get_by_test_id("email")).to_have_text(email)

    await page.get_by_label("Key name").fill("browser test")
    await page.get_by_role("button", name="Create key").click()
    new_key = page.get_by_test_id("new-api-key")
    await expect(new_key).to_be_visible()
    key = (await new_key.inner_text()).strip()
    assert key
    assert await api_status(hub, key) == 200

    row = page.get_by_test_id("api-keys").get_by_role("row", name=re.compile("browser test"))
    await expect(row).to_have_count(1)
    await row.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_test_id("message")).to_have_text("The API key was revoked.")
    await expect(page.get_by_text("No API keys yet.")).to_be_visible()
    await expect(page.get_by_test_id("new-api-key")).to_have_count(0)
    assert await api_status(hub, key) == 401

    assert console.errors == []


async def test_next_brings_user_back_to_account(browser: Browser, hub: str) -> None:
    console = Console()
    page = await new_page(browser, console)
    email = unique_email("next")
    await page.goto(f"{hub}/sign-up")
    await fill_sign_up(page, name="Grace", email=email)
    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("nav-account")).to_have_count(0)

    await page.goto(f"{hub}/account")
    await expect(page).to_have_url(f"{hub}/sign-in?next=/account")
    await fill_sign_in(page, email=email, password="wrong password")
    await expect(page.get_by_role("alert")).to_have_text(re.compile("wrong email or password"))
    await expect(page.get_by_test_id("sign-in-form").get_by_label("Email")).to_have_value(email)
    await fill_sign_in(page, email=email)
    await expect(page).to_have_url(f"{hub}/account")
    # Chromium logs the 401 of the failed sign-in; nothing else may appear.
    assert [e for e in console.errors if "status of 401" not in e] == []


async def test_stylesheet_applies_under_the_csp(browser: Browser, hub: str) -> None:
    console = Console()
    page = await new_page(browser, console)
    await page.goto(f"{hub}/sign-in")
    panel = page.locator(".panel").first
    await expect(panel).to_have_css("border-top-style", "solid")
    assert console.errors == []


async def test_console_watch_sees_csp_violations(browser: Browser, hub: str) -> None:
    """The console checks above are not vacuous: an inline script is refused and reported."""
    console = Console()
    page = await new_page(browser, console)
    await page.goto(f"{hub}/")
    async with page.expect_console_message(lambda m: "CSP violation: script-src" in m.text):
        await page.evaluate(
            """() => { const s = document.createElement("script");
                       s.textContent = "window.ran = true"; document.body.append(s); }"""
        )
    assert await page.evaluate("window.ran === undefined")
    assert any("script-src" in e for e in console.errors)


async def test_layout_check_sees_unlabelled_controls_and_overflow(
    browser: Browser, hub: str
) -> None:
    """The layout checks below are not vacuous."""
    page = await new_page(browser, Console())
    await page.goto(f"{hub}/sign-in")
    assert await layout_problems(page) == []
    await page.evaluate(
        """() => { const i = document.createElement("input"); document.body.append(i);
                   const d = document.createElement("div"); d.textContent = "x";
                   d.style.position = "absolute"; d.style.left = "5000px";
                   document.body.append(d); }"""
    )
    problems = await layout_problems(page)
    assert len(problems) == 2 and "sideways" in problems[0] and "<input>" in problems[1]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_pages_fit_the_screen(browser: Browser, hub: str, viewport: dict[str, int]) -> None:
    """No sideways scrolling on any page, at desktop and phone widths. With COCALC_SHOTS
    set, a full-page screenshot of each page, light and dark, is saved there."""
    console = Console()
    page = await new_page(browser, console, viewport=viewport)

    async def check(name: str) -> None:
        await check_layout(page, name, viewport)

    await page.goto(f"{hub}/")
    await check("landing")
    await page.goto(f"{hub}/sign-in")
    await check("sign-in")
    await fill_sign_in(page, email="nobody@example.org", password="wrong password")
    await expect(page.get_by_role("alert")).to_be_visible()
    await check("sign-in-error")
    await page.goto(f"{hub}/sign-up")
    await check("sign-up")
    await fill_sign_up(page, name="Katherine Johnson", email=unique_email("shots"))
    await expect(page.get_by_test_id("nav-account")).to_be_visible()
    await check("landing-signed-in")
    await page.goto(f"{hub}/account")
    for name in ("ci runner", "laptop script"):
        await page.get_by_label("Key name").fill(name)
        await page.get_by_role("button", name="Create key").click()
        await expect(page.get_by_test_id("new-api-key")).to_be_visible()
    await check("account")
    # Chromium logs the 401 of the failed sign-in; nothing else may appear.
    assert [e for e in console.errors if "status of 401" not in e] == []
