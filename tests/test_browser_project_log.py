"""The Settings tab's project log and the custom-port form, in a real Chromium against a
real hub on 127.0.0.1. A failing test leaves screenshots (see tests/conftest.py)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cocalc_k8s.keys import CONTENT_ORIGINS
from tests.test_browser import Console
from tests.test_browser_projects import START_TIMEOUT_MS, create_project, open_tab, signed_up

with contextlib.suppress(ImportError):  # without it the browser fixture skips
    from playwright.async_api import Browser, expect

pytestmark = pytest.mark.browser


@pytest.fixture
async def hub(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def test_the_log_names_who_did_what(hub: str, browser: Browser) -> None:
    console, ben_console = Console(), Console()
    ana = await signed_up(browser, console, hub, "Ana")
    ben = await signed_up(browser, ben_console, hub, "Ben")
    url = await create_project(ana, hub, "Glaciers")
    badge = ana.get_by_test_id("state-badge")
    await ana.get_by_role("button", name="Start", exact=True).click()
    await expect(badge).to_have_text("running", timeout=START_TIMEOUT_MS)
    await ana.get_by_role("button", name="Stop").click()
    await expect(badge).to_have_text("stopped", timeout=START_TIMEOUT_MS)

    await ana.get_by_role("button", name="Edit title and description").click()
    await ana.get_by_label("Title").fill("Glaciers <b>2</b>")
    await ana.get_by_role("button", name="Save", exact=True).click()
    await expect(ana.get_by_test_id("project-title")).to_have_text("Glaciers <b>2</b>")

    await open_tab(ana, "Settings")
    await ana.get_by_label("Add a collaborator by email").fill(ben.email)  # type: ignore[attr-defined]
    await ana.get_by_role("button", name="Add", exact=True).click()

    log = ana.get_by_test_id("project-log").locator("li .log-text")
    await expect(log).to_have_text(
        [
            "Ana added Ben",
            "Ana renamed the project to “Glaciers <b>2</b>”",  # text, not markup
            "Ana stopped the project",
            "Ana started the project",
            "Ana created the project",
        ]
    )
    first_time = ana.get_by_test_id("project-log").locator("li time").first
    await expect(first_time).to_have_text("just now")
    assert await first_time.get_attribute("title")  # the absolute time

    # Ben starts it from his page; Ana's open log follows the state stream.
    await ben.goto(url)
    await ben.get_by_role("button", name="Start", exact=True).click()
    await expect(log.first).to_have_text("Ben started the project")
    await expect(badge).to_have_text("running", timeout=START_TIMEOUT_MS)
    await ben.get_by_role("button", name="Stop").click()
    await expect(log.first).to_have_text("Ben stopped the project", timeout=START_TIMEOUT_MS)
    await expect(badge).to_have_text("stopped", timeout=START_TIMEOUT_MS)
    assert console.errors == [], "\n".join(console.errors)
    assert ben_console.errors == [], "\n".join(ben_console.errors)


async def test_load_older_pages_back(hub: str, browser: Browser) -> None:
    console = Console()
    page = await signed_up(browser, console, hub, "Cy")
    url = await create_project(page, hub, "Renamed 0")
    api = url.replace("/projects/", "/api/v2/projects/")
    csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    for n in range(1, 56):  # 55 renames + the creation: more than a page of 50
        response = await page.request.patch(
            api, data={"title": f"Renamed {n}"}, headers={"X-CSRF-Token": csrf or ""}
        )
        assert response.ok, await response.text()
    await page.goto(f"{url}/settings")
    entries = page.get_by_test_id("project-log").locator("li")
    await expect(entries).to_have_count(50)
    await page.get_by_role("button", name="Load older").click()
    await expect(entries).to_have_count(56)
    await expect(entries.last).to_have_text(re.compile(r"^Cy created the project"))
    await expect(page.get_by_role("button", name="Load older")).to_be_hidden()
    assert console.errors == [], "\n".join(console.errors)


async def test_the_port_form_opens_the_port_on_the_content_origin(
    hub: str, client: TestClient[Any, Any], browser: Browser
) -> None:
    console = Console()
    page = await signed_up(browser, console, hub, "Dee")
    url = await create_project(page, hub, "Ports")
    project_id = url.rsplit("/", 1)[-1]
    content = client.app[CONTENT_ORIGINS].url_for(project_id)
    assert not content.startswith(hub)
    form = page.get_by_test_id("port-form")

    await form.get_by_label("Port").fill("70000")
    await form.get_by_role("button", name="Open port").click()
    await expect(form.get_by_role("alert")).to_have_text("Enter a port number from 1 to 65535.")
    assert len(page.context.pages) == 1

    for kind, port in (("port", "8123"), ("server", "9000")):
        await form.get_by_label("Port").fill(port)
        await form.get_by_label("How the server sees the path").select_option(kind)
        wanted = f"{content}/{project_id}/{kind}/{port}/"
        async with (
            page.context.expect_page() as new_tab,
            page.context.expect_event("request", lambda r, u=wanted: r.url == u) as opened,
        ):
            await form.get_by_role("button", name="Open port").click()
        request = await opened.value
        assert request.is_navigation_request()
        tab = await new_tab.value
        assert tab is not page
        await expect(form.get_by_role("alert")).to_be_hidden()
        await tab.close()
    assert console.errors == [], "\n".join(console.errors)
