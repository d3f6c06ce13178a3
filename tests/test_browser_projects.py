"""The project pages in a real Chromium (Playwright) against a real hub on 127.0.0.1:
one user's whole flow (create, start, edit, upload, terminal, share, stop), what a
stranger sees, and screenshots at desktop and phone sizes.

Skipped like tests/test_browser.py when Chromium or Playwright is missing (a failure
under CI). Set COCALC_SHOTS=<dir> to keep the screenshots.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import unique_email
from tests.test_browser import (
    DESKTOP,
    PHONE,
    Console,
    check_layout,
    fill_sign_up,
    new_page,
)

try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:  # pragma: no cover - reported by the fixture below
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser
START_TIMEOUT_MS = 30_000
UPLOAD_BYTES = 3_000_000


@pytest.fixture
async def hub(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def signed_up(browser: Browser, console: Console, hub: str, name: str, **ctx: Any) -> Page:
    page = await new_page(browser, console, **ctx)
    await page.goto(f"{hub}/sign-up")
    email = unique_email(name.lower())
    await fill_sign_up(page, name=name, email=email)
    await expect(page.get_by_test_id("nav-account")).to_have_text(name)
    page.email = email  # type: ignore[attr-defined]
    return page


async def create_project(page: Page, hub: str, title: str) -> str:
    await page.goto(f"{hub}/")
    await page.get_by_role("link", name="Your projects").click()
    await expect(page).to_have_url(f"{hub}/projects")
    await page.get_by_label("Title").fill(title)
    await page.get_by_role("button", name="Create project").click()
    await expect(page.get_by_test_id("project-title")).to_have_text(title)
    return page.url


async def open_tab(page: Page, name: str) -> None:
    await (
        page.get_by_role("navigation", name="Project sections")
        .get_by_role("link", name=name)
        .click()
    )


async def test_a_project_from_creation_to_stop(hub: str, browser: Browser) -> None:
    # `hub` first: the browser (and its open progress streams) closes before the hub.
    console = Console()
    page = await signed_up(
        browser, console, hub, "Ada", permissions=["clipboard-read", "clipboard-write"]
    )
    url = await create_project(page, hub, "Analytical <Engine>")
    project_id = url.rsplit("/", 1)[-1]

    # Start, and watch the state reach "running" (the progress stream drives the badge).
    badge = page.get_by_test_id("state-badge")
    await expect(badge).to_have_text("stopped")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(badge).to_have_text("running", timeout=START_TIMEOUT_MS)
    await expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    await expect(page.get_by_role("button", name="Start", exact=True)).to_be_hidden()

    # Title and description edited in place.
    await page.get_by_role("button", name="Edit title and description").click()
    await page.get_by_label("Description").fill("Notes on the engine")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_test_id("project-description")).to_have_text("Notes on the engine")

    # A new markdown file: type, autosave, reload, the text is still there.
    files = page.get_by_test_id("panel-files")
    await files.get_by_role("button", name="New file").click()
    await page.get_by_label("File name").fill("notes.md")
    await page.get_by_role("button", name="Create").click()
    await expect(page).to_have_url(f"{url}/edit/notes.md")
    editor = page.get_by_test_id("editor").locator(".cm-content")
    await editor.click()
    await page.keyboard.type("# Notes\n\nThe engine weaves algebraic patterns.")
    save_state = page.get_by_test_id("save-state")
    await expect(save_state).to_have_text("Saved")
    await expect(
        page.get_by_test_id("preview").get_by_role("heading", name="Notes")
    ).to_be_visible()
    await page.reload()
    await expect(editor).to_contain_text("The engine weaves algebraic patterns.")
    await expect(save_state).to_have_text("Saved")
    # Syntax highlighting: the markdown heading's mark carries highlight classes.
    heading = editor.locator(".cm-line").first.locator("span").first
    await expect(heading).to_have_class(re.compile("\u037c"))

    # Upload a few MB with the button; the listing shows its size.
    await open_tab(page, "Files")
    await expect(files.get_by_role("link", name="notes.md")).to_be_visible()
    await page.locator("#upload-input").set_input_files(
        {"name": "data.bin", "mimeType": "application/octet-stream", "buffer": b"x" * UPLOAD_BYTES}
    )
    row = files.get_by_role("row", name=re.compile("data.bin"))
    await expect(row.get_by_test_id("size")).to_have_text("3.0 MB", timeout=20_000)

    # Drag and drop a file onto the listing.
    drop = await page.evaluate_handle(
        """() => { const dt = new DataTransfer();
                   dt.items.add(new File(["dropped text"], "dropped.txt", {type: "text/plain"}));
                   return dt; }"""
    )
    for event in ("dragenter", "dragover", "drop"):
        await files.dispatch_event(event, {"dataTransfer": drop})
    dropped = files.get_by_role("row", name=re.compile("dropped.txt"))
    await expect(dropped.get_by_test_id("size")).to_have_text("12 B")

    # Download the upload back, byte for byte.
    await row.get_by_label("Actions for data.bin").click()
    async with page.expect_download() as download_info:
        await row.get_by_role("link", name="Download").click()
    download = await download_info.value
    saved = await download.path()
    assert await asyncio.to_thread(os.path.getsize, saved) == UPLOAD_BYTES

    # A folder, then delete it with confirmation.
    await files.get_by_role("button", name="New folder").click()
    await page.get_by_label("Folder name").fill("old stuff")
    await page.get_by_role("button", name="Create").click()
    folder = files.get_by_role("row", name=re.compile(r"old stuff\/"))
    await expect(folder).to_be_visible()
    await folder.get_by_label("Actions for old stuff").click()
    await folder.get_by_role("button", name="Delete").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(folder).to_have_count(0)

    # The shared terminal.
    await open_tab(page, "Terminal")
    await expect(page.get_by_test_id("terminal-status")).to_have_text("Connected", timeout=20_000)
    await page.get_by_test_id("terminal").click()
    await page.keyboard.type("echo hello-$RANDOM\n")
    rows = page.get_by_test_id("terminal").locator(".xterm-rows")
    await expect(rows).to_contain_text(re.compile(r"hello-\d+"))
    assert "I have no name" not in (await rows.text_content() or "")  # a uid of its own
    # Copy and paste with Ctrl+Shift+C / V: a double click selects a word of the output.
    await page.keyboard.type("echo copy-$((6*7))x\n")
    await expect(rows).to_contain_text("copy-42x")
    box = await rows.get_by_text("copy-42x", exact=True).last.bounding_box()
    assert box is not None
    await page.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.keyboard.press("Control+Shift+C")
    deadline = asyncio.get_running_loop().time() + 10
    while await page.evaluate("navigator.clipboard.readText()") != "copy-42x":
        assert asyncio.get_running_loop().time() < deadline, "the selection was not copied"
        await asyncio.sleep(0.05)
    await page.evaluate("navigator.clipboard.writeText('echo pasted-$((5*5))')")
    await page.keyboard.press("Control+Shift+V")
    await expect(rows).to_contain_text("echo pasted-$((5*5))")
    await page.keyboard.press("Enter")
    await expect(rows).to_contain_text("pasted-25")

    # A second account, added as collaborator, sees the project.
    friend_console = Console()
    friend = await signed_up(browser, friend_console, hub, "Grace")
    await open_tab(page, "Settings")
    await page.get_by_label("Add a collaborator by email").fill(friend.email)  # type: ignore[attr-defined]
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.get_by_test_id("collaborators")).to_contain_text("Grace")
    await friend.goto(f"{hub}/projects")
    await friend.get_by_role("link", name="Analytical <Engine>").click()
    await expect(friend.get_by_test_id("project-title")).to_have_text("Analytical <Engine>")
    await expect(friend.get_by_test_id("state-badge")).to_have_text("running")

    # A third account cannot open it.
    stranger_console = Console()
    stranger = await signed_up(browser, stranger_console, hub, "Mallory")
    response = await stranger.goto(f"{hub}/projects/{project_id}")
    assert response is not None and response.status == 404
    await expect(stranger.get_by_role("heading", level=1)).to_have_text("Project not found")

    # Stop; the collaborator's page follows.
    await page.get_by_role("button", name="Stop").click()
    await expect(badge).to_have_text("stopped", timeout=START_TIMEOUT_MS)
    await expect(friend.get_by_test_id("state-badge")).to_have_text("stopped")

    assert console.errors == [], "\n".join(console.errors)
    assert friend_console.errors == [], "\n".join(friend_console.errors)
    assert [e for e in stranger_console.errors if "status of 404" not in e] == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_project_pages_fit_the_screen(
    hub: str, browser: Browser, viewport: dict[str, int]
) -> None:
    """No sideways scrolling; with COCALC_SHOTS set, screenshots of every tab."""
    console = Console()
    page = await signed_up(browser, console, hub, "Katherine", viewport=viewport)

    async def check(name: str) -> None:
        await check_layout(page, name, viewport)

    for title in ("Orbital mechanics", "Homework 3: a rather long project title to wrap"):
        url = await create_project(page, hub, title)
    await page.goto(f"{hub}/projects")
    await check("projects")
    await page.goto(url)
    await expect(page.get_by_test_id("panel-files")).to_contain_text("This folder is empty")
    await page.get_by_role("button", name="New file").click()
    await page.get_by_label("File name").fill("analysis.py")
    await page.get_by_role("button", name="Create").click()
    await page.get_by_test_id("editor").locator(".cm-content").click()
    await page.keyboard.type(
        'def orbit(r):\n"""Period of a circular orbit."""\nreturn 2 * 3.14159 * r\n'
    )
    await expect(page.get_by_test_id("save-state")).to_have_text("Saved")
    await check("editor")
    await open_tab(page, "Files")
    await expect(page.get_by_role("row", name=re.compile("analysis.py"))).to_be_visible()
    await check("files")
    await open_tab(page, "Settings")
    await expect(page.get_by_test_id("quota")).to_contain_text("Memory")
    await check("settings")
    await open_tab(page, "Terminal")
    await expect(page.get_by_test_id("terminal-status")).to_have_text("Connected", timeout=30_000)
    await check("terminal")
    assert console.errors == []
