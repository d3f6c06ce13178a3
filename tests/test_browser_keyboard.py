"""Keyboard only: sign up, create a project, move between its tabs and create a file
without a mouse; the focused control is always visibly outlined.

Skipped like tests/test_browser.py when Chromium or Playwright is missing (a failure
under CI)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import unique_email
from tests.test_browser import PASSWORD, Console, new_page

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser
MAX_TABS = 40

FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const name = (el.labels?.[0]?.textContent || el.getAttribute("aria-label")
    || el.textContent || el.value || "").trim().replace(/\\s+/g, " ");
  const style = getComputedStyle(el);
  return {name, outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};
}"""


@pytest.fixture
async def hub(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def tab_to(page: Page, name: str) -> None:
    """Press Tab until the control named `name` has the focus (and shows it)."""
    seen = []
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUSED)
        if focused is None:
            continue
        seen.append(focused["name"])
        if focused["name"] == name:
            assert focused["outline"] != "none" and focused["width"] >= 1, focused
            return
    raise AssertionError(f"Tab never reached {name!r}; it went through {seen}")


async def test_everything_by_keyboard(hub: str, browser: Browser) -> None:
    console = Console()
    page = await new_page(browser, console)
    await page.goto(f"{hub}/sign-up")
    await tab_to(page, "Name")
    await page.keyboard.type("Key Board")
    await tab_to(page, "Email")
    await page.keyboard.type(unique_email("keys"))
    await tab_to(page, "Password")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("nav-account")).to_have_text("Key Board")

    await tab_to(page, "Projects")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{hub}/projects")
    await tab_to(page, "Title")
    await page.keyboard.type("Typed, not clicked")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("project-title")).to_have_text("Typed, not clicked")

    await expect(page.get_by_test_id("panel-files")).to_contain_text("This folder is empty")
    await tab_to(page, "New file")
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("File name")).to_be_focused()
    await page.keyboard.type("keys.md")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("editor").locator(".cm-content")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"/edit/keys\.md$"))

    # Tab indents in the editor; Escape, then Tab, leaves it (CodeMirror's tab focus mode).
    await page.keyboard.press("Tab")
    await page.keyboard.type("x")
    await expect(page.get_by_test_id("editor").locator(".cm-content")).to_contain_text("x")
    hint = (
        await page.get_by_test_id("editor").locator(".cm-content").get_attribute("aria-describedby")
    )
    await expect(page.locator(f"#{hint}")).to_contain_text("Escape, then Tab")
    await page.keyboard.press("Escape")
    await tab_to(page, "Settings")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("panel-settings")).to_be_visible()
    await expect(page.get_by_test_id("quota")).to_contain_text("Memory")
    assert console.errors == [], console.errors
