"""TimeTravel in a real Chromium (issue 14): two collaborators edit a file at known moments;
the panel lists their versions with the right names, shows an old version read-only,
compares two, and restoring an old version brings exactly its text back, in the file and
in both editors. Keyboard only where a person would use it (the slider, the dialogs).
The project stays stopped: the hub owns its files. Screenshots on failure (conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from tests.test_browser import Console
from tests.test_browser_collab import (
    Hub,
    eventually,
    home_of,
    on_disk,
    open_file,
    put_cursor_at_end_of_line,
    same_text,
    shared_project,
    signed_up,
)

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser

__all__ = ["hub"]
from tests.test_browser_collab import hub  # noqa: E402  (the fixture)


async def versions(page: Page, hub: Hub, project_id: str, path: str) -> list[dict[str, Any]]:
    response = await page.request.get(
        f"{hub.base}/api/v2/projects/{project_id}/history?path={path}"
    )
    assert response.status == 200, await response.text()
    return list((await response.json())["versions"])


async def test_versions_by_two_people_viewed_compared_and_restored(
    hub: Hub, browser: Browser
) -> None:
    ada_console, bea_console = Console(), Console()
    ada = await signed_up(browser, ada_console, hub, "Ada")
    bea = await signed_up(browser, bea_console, hub, "Bea")
    project_id = await shared_project(ada, bea, hub)
    file = home_of(hub, project_id) / "poem.py"
    original = "x = 1\n"
    await asyncio.to_thread(file.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(file.write_text, original)
    await open_file(ada, hub, project_id, "poem.py")
    await open_file(bea, hub, project_id, "poem.py")

    async def count_is(n: int) -> bool:
        return len(await versions(ada, hub, project_id, "poem.py")) == n

    await eventually(lambda: count_is(1), "the file's text when opened is version 1", 10)
    await put_cursor_at_end_of_line(ada, 1)
    await ada.keyboard.type("  # by ada")
    await on_disk(file, "x = 1  # by ada\n")
    await eventually(lambda: count_is(2), "Ada's edit is version 2", 10)
    await put_cursor_at_end_of_line(bea, 1)
    await bea.keyboard.type(" and bea")
    final = "x = 1  # by ada and bea\n"
    await on_disk(file, final)
    await eventually(lambda: count_is(3), "Bea's edit is version 3", 10)

    await ada.get_by_test_id("timetravel-button").click()
    panel = ada.get_by_test_id("timetravel")
    await expect(panel).to_be_visible()
    items = panel.get_by_test_id("tt-list").locator("button")
    await expect(items).to_have_count(3)
    await expect(items.nth(0)).to_contain_text("Version 3 · edited by Bea")
    await expect(items.nth(1)).to_contain_text("Version 2 · edited by Ada")
    await expect(items.nth(2)).to_contain_text("Version 1 · changed on disk by disk")
    text = panel.get_by_test_id("tt-view").locator(".cm-content")
    await expect(text).to_have_text(final.rstrip("\n"))

    # The slider, by keyboard: Home is the oldest version.
    slider = panel.get_by_test_id("tt-slider")
    await slider.focus()
    await ada.keyboard.press("Home")
    await expect(panel.get_by_test_id("tt-version")).to_contain_text("Version 1")
    await expect(text).to_have_text("x = 1")
    assert await text.get_attribute("contenteditable") == "false"
    await ada.keyboard.press("ArrowRight")
    await expect(panel.get_by_test_id("tt-version")).to_contain_text("Version 2")

    # Compared with version 3, inline and side by side.
    await panel.get_by_test_id("tt-compare").select_option("3")
    diff = panel.get_by_test_id("tt-diff")
    await expect(diff.locator("ins")).to_have_text(" and bea")
    await panel.get_by_test_id("tt-layout").select_option("split")
    await expect(diff.locator(".tt-pane")).to_have_count(2)
    await panel.get_by_test_id("tt-compare").select_option("")
    await expect(text).to_have_text("x = 1  # by ada")
    href = await panel.get_by_test_id("tt-download").get_attribute("href")
    assert href is not None and "/versions/2?" in href and "download=1" in href

    # Restore version 1: a new version, the same text everywhere.
    await slider.focus()
    await ada.keyboard.press("Home")
    await expect(panel.get_by_test_id("tt-version")).to_contain_text("Version 1")
    await panel.get_by_test_id("tt-restore").click()
    await ada.get_by_role("button", name="Restore", exact=True).click()
    await expect(panel.get_by_test_id("tt-status")).to_contain_text("as version 4")
    await expect(items.nth(0)).to_contain_text("Version 4 · restored version 1 by Ada")
    await panel.get_by_test_id("tt-close").click()
    await expect(panel).to_have_count(0)
    await same_text([ada, bea], original)
    await on_disk(file, original)
    newest = (await versions(bea, hub, project_id, "poem.py"))[0]
    assert newest["kind"] == "restore" and newest["restored_from"] == 1

    # From the Files tab: a file's menu opens the same panel.
    await bea.goto(f"{hub.base}/projects/{project_id}/files/")
    await bea.locator('summary[aria-label="Actions for poem.py"]').click()
    await bea.get_by_role("button", name="TimeTravel…").click()
    await expect(
        bea.get_by_test_id("timetravel").get_by_test_id("tt-list").locator("button")
    ).to_have_count(4)
    await bea.keyboard.press("Escape")
    await expect(bea.get_by_test_id("timetravel")).to_have_count(0)

    # Deleted, then brought back from the folder's deleted files.
    await bea.locator('summary[aria-label="Actions for poem.py"]').click()
    await bea.get_by_test_id("file-list").get_by_role("button", name="Delete", exact=True).click()
    await bea.locator("dialog").get_by_role("button", name="Delete", exact=True).click()
    await expect(bea.locator("a[data-edit='poem.py']")).to_have_count(0)
    await bea.get_by_test_id("deleted-files-button").click()
    deleted = bea.get_by_test_id("deleted-files")
    await deleted.get_by_role("button", name="poem.py").click()
    panel = bea.get_by_test_id("timetravel")
    await expect(panel.get_by_test_id("tt-status")).to_contain_text("was deleted")
    await panel.get_by_test_id("tt-restore").click()  # the newest: version 4's text
    await bea.get_by_role("button", name="Restore", exact=True).click()
    await expect(panel.get_by_test_id("tt-status")).to_contain_text(
        "Restored version 4 as version 5"
    )
    await on_disk(file, original)
    await panel.get_by_test_id("tt-close").click()
    await expect(deleted.get_by_test_id("tt-deleted").locator("li")).to_have_count(0)
    assert ada_console.errors == [] and bea_console.errors == []
