"""Publishing from the Files tab in Chromium: the menu's Publish…, the mark on published
paths, the project's Published page (visibility, names), the reader's page with Edit for
collaborators only. The project stays stopped: the hub reads the files itself."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cocalc_k8s.keys import SETTINGS
from tests.test_browser import Console, new_page
from tests.test_browser_projects import create_project, open_tab, signed_up

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, expect

pytestmark = pytest.mark.browser
RENDER_MS = 60_000


@pytest.fixture
async def hub(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def test_publish_from_the_files_tab(hub: str, browser: Browser, client: Any) -> None:
    console = Console()
    page = await signed_up(browser, console, hub, "Pia")
    url = await create_project(page, hub, "Notes")
    project_id = url.rstrip("/").rsplit("/", 1)[-1]
    home = client.app[SETTINGS].data_dir / "projects" / project_id
    home.mkdir(parents=True, exist_ok=True)
    (home / "week1.md").write_text("# Week one\n\nEuler: $e^{i\\pi} + 1 = 0$\n")
    await open_tab(page, "Files")
    row = page.get_by_test_id("file-list").locator("tr", has_text="week1.md")
    await row.get_by_label("Actions for week1.md").click()
    await row.get_by_role("button", name="Publish…").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("Name in URLs")).to_have_value("week1.md")
    await dialog.get_by_role("button", name="Publish").click()
    await expect(page.get_by_test_id("files-status")).to_contain_text("Published at")
    badge = row.get_by_test_id("published-badge")
    await expect(badge).to_be_visible()

    # The project's Published page: make it listed, set the names.
    await page.get_by_test_id("published-link").click()
    await expect(page.get_by_role("heading", name="Published from this project")).to_be_visible()
    async with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        await page.get_by_label("Visibility of week1.md").select_option("listed")
    assert (await patched.value).status == 200
    username = f"pia{uuid.uuid4().hex[:6]}"
    await page.get_by_label("Your username").fill(username)
    async with page.expect_response(lambda r: "username" in r.url) as saved:
        await page.get_by_role("button", name="Save username").click()
    assert (await saved.value).status == 200
    await page.get_by_label("Project name in URLs").fill("notes")
    async with page.expect_response(lambda r: "url-name" in r.url) as saved:
        await page.get_by_role("button", name="Save project name").click()
    assert (await saved.value).status == 200
    await expect(page.locator("#manage-error")).to_be_hidden()

    # A reader (another browser context, signed out) finds it in the index, by name.
    reader = await new_page(browser, console)
    await expect_eventually_listed(reader, hub, "week1.md")
    # The first view renders in a worker process: seconds on a loaded machine.
    await reader.goto(f"{hub}/{username}/notes/week1.md", timeout=RENDER_MS)
    await expect(reader.get_by_role("heading", name="Week one")).to_be_visible(timeout=RENDER_MS)
    await expect(reader.locator(".katex").first).to_be_visible(timeout=RENDER_MS)
    await expect(reader.get_by_test_id("share-edit")).to_have_count(0)
    # The collaborator gets Edit, which opens the file in the project.
    await page.goto(f"{hub}/{username}/notes/week1.md", timeout=RENDER_MS)
    await page.get_by_test_id("share-edit").click()
    await expect(page).to_have_url(f"{hub}/projects/{project_id}/edit/week1.md")
    assert console.errors == []


async def expect_eventually_listed(page: Any, hub: str, name: str) -> None:
    await page.goto(f"{hub}/share?q={name}", timeout=RENDER_MS)
    await expect(page.get_by_test_id("share-list")).to_contain_text(name)
