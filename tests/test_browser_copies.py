"""Copy to project… in a real Chromium: a folder of one project copied into two others,
with progress to the end and a link to the copy; a second copy without "merge" fails with
the hub's reason. The projects stay stopped: the hub copies on its own storage."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cocalc_k8s.keys import SETTINGS
from tests.conftest import sign_up
from tests.share.helpers import publish
from tests.test_browser import Console
from tests.test_browser_projects import create_project, open_tab, signed_up
from tests.test_projects_api import User, new_project

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, expect

pytestmark = pytest.mark.browser


@pytest.fixture
async def hub(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def test_copy_a_folder_to_two_projects(hub: str, client: Any, browser: Browser) -> None:
    console = Console()
    page = await signed_up(browser, console, hub, "Tess")
    projects = client.app[SETTINGS].data_dir / "projects"
    targets = [(await create_project(page, hub, t)).rsplit("/", 1)[-1] for t in ("Ann", "Ben")]
    source = (await create_project(page, hub, "Course")).rsplit("/", 1)[-1]
    (projects / source / "week1" / "data").mkdir(parents=True)
    (projects / source / "week1" / "task.md").write_text("# Week 1")
    (projects / source / "week1" / "data" / "x.csv").write_text("1,2\n")
    await open_tab(page, "Files")
    await page.reload()

    async def open_dialog() -> None:
        row = page.get_by_role("row", name="week1/")
        await row.get_by_label("Actions for week1").click()
        await row.get_by_role("button", name="Copy to project…").click()

    await open_dialog()
    dialog = page.get_by_role("dialog", name="Copy week1/ to…")
    await dialog.get_by_label("Ann").check()
    await dialog.get_by_label("Ben").check()
    await dialog.get_by_label("Into the folder").fill("handouts")
    await dialog.get_by_role("button", name="Copy", exact=True).click()
    await expect(dialog.get_by_test_id("copy-done")).to_have_count(2, timeout=20_000)
    for target in targets:
        copied = projects / target / "handouts" / "week1"
        assert (copied / "task.md").read_text() == "# Week 1"
        assert (copied / "data" / "x.csv").read_text() == "1,2\n"
    await dialog.get_by_role("button", name="Close").click()

    await open_dialog()
    dialog = page.get_by_role("dialog", name="Copy week1/ to…")
    await dialog.get_by_label("Ann").check()
    await dialog.get_by_label("Into the folder").fill("handouts")
    await dialog.get_by_role("button", name="Copy", exact=True).click()
    await expect(dialog.get_by_test_id("copy-failed")).to_contain_text("already exists")
    await dialog.get_by_role("button", name="Close").click()
    await page.goto(f"{hub}/projects/{targets[0]}/files/handouts/")
    await expect(page.get_by_role("row", name="week1/")).to_be_visible()
    assert console.errors == [], "\n".join(console.errors)


async def test_copy_a_published_folder_to_my_project(
    hub: str, client: Any, browser: Browser
) -> None:
    author = User(client, await sign_up(client))
    course = await new_project(author, "Course")
    projects = client.app[SETTINGS].data_dir / "projects"
    (projects / course / "notes" / "week1.md").parent.mkdir(parents=True)
    (projects / course / "notes" / "week1.md").write_text("# Week 1")
    item = await publish(author, course, path="notes", name="notes")

    console = Console()
    page = await signed_up(browser, console, hub, "Rita")
    mine = (await create_project(page, hub, "Mine")).rsplit("/", 1)[-1]
    await page.goto(f"{hub}/share/{item['id']}")
    await expect(page.get_by_test_id("share-edit")).to_have_count(0)  # not a collaborator
    await page.get_by_test_id("share-copy").click()
    dialog = page.get_by_role("dialog", name="Copy notes/ to…")
    await dialog.get_by_label("Mine").check()
    await dialog.get_by_role("button", name="Copy", exact=True).click()
    await expect(dialog.get_by_test_id("copy-done")).to_have_count(1, timeout=20_000)
    assert (projects / mine / "notes" / "week1.md").read_text() == "# Week 1"
    await dialog.get_by_test_id("copy-done").click()
    await expect(page.get_by_role("row", name="notes/")).to_be_visible()
    assert console.errors == [], "\n".join(console.errors)
