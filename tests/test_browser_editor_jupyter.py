"""One .py file open at once in the hub's collaborative editor and in JupyterLab's
real-time collaboration (issues 13 and 15): the two meet only through the file on disk,
and each side takes the other's saves as a change to its text (no text lost, none twice).
A failing test leaves screenshots (see tests/conftest.py)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from cocalc_k8s.keys import CONTENT_ORIGINS
from tests.test_browser import Console
from tests.test_browser_collab import (
    Hub,
    eventually,
    home_of,
    hub,
    on_disk,
    open_file,
    signed_up,
    text_of,
)

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, Page

pytest.importorskip("jupyter_server_ydoc")
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
__all__ = ["hub"]  # the fixture, used by name

LAB_EDITOR = ".jp-FileEditor .cm-content"
LAB_TEXT = """() => [...document.querySelectorAll(".jp-FileEditor .cm-content .cm-line")]
  .map((line) => line.textContent).join("\\n")"""


async def lab_text(page: Page) -> str:
    text: str = await page.evaluate(LAB_TEXT)
    return text


async def shows(page: Page, expected: str, read: Any, what: str, within: float) -> None:
    async def ok() -> bool:
        return bool(await read(page) == expected)

    try:
        await eventually(ok, what, within)
    except AssertionError:
        raise AssertionError(f"{what}: expected {expected!r}, got {await read(page)!r}") from None


async def test_one_file_in_our_editor_and_in_jupyterlab(hub: Hub, browser: Browser) -> None:
    console = Console()
    ada = await signed_up(browser, console, hub, "Ada")
    headers = {"X-CSRF-Token": ada.csrf}  # type: ignore[attr-defined]
    response = await ada.request.post(
        f"{hub.base}/api/v2/projects", data={"title": "Both"}, headers=headers
    )
    project_id = str((await response.json())["project_id"])
    api = f"{hub.base}/api/v2/projects/{project_id}"
    response = await ada.request.put(f"{api}/files/script.py", data=b"a = 1\n", headers=headers)
    assert response.ok, await response.text()
    disk = home_of(hub, project_id) / "script.py"

    # JupyterLab's editor of the file, on the project's origin (starting the project).
    assert hub.runner is not None
    origin = hub.runner.app[CONTENT_ORIGINS].url_for(project_id)
    lab = await ada.context.new_page()
    lab_url = f"{origin}/{project_id}/port/jupyterlab/lab"
    await lab.goto(f"{lab_url}/tree/script.py", timeout=120_000)
    await shows(lab, "a = 1\n", lab_text, "JupyterLab did not open the file", 90)

    # Ours, in the same account's other page.
    await open_file(ada, hub, project_id, "script.py")
    assert await text_of(ada) == "a = 1\n"

    # JupyterLab writes a line and saves: our editor takes it as a change from disk.
    await lab.locator(LAB_EDITOR).click()
    await lab.keyboard.press("Control+End")
    await lab.keyboard.type("b = 2\n")
    await lab.keyboard.press("Control+s")
    await on_disk(disk, "a = 1\nb = 2\n", within=30)
    await shows(ada, "a = 1\nb = 2\n", text_of, "our editor missed JupyterLab's save", 30)

    # Ours writes a line and saves: JupyterLab takes it from disk in turn.
    await ada.locator(".cm-content").locator(".cm-line").nth(2).click()
    await ada.keyboard.type("c = 3\n")
    await on_disk(disk, "a = 1\nb = 2\nc = 3\n", within=30)
    both = "a = 1\nb = 2\nc = 3\n"
    await shows(lab, both, lab_text, "JupyterLab missed our editor's save", 30)
    # And nothing comes back twice: a while later, all three still agree.
    await shows(ada, both, text_of, "our editor diverged", 10)
    assert await lab_text(lab) == both
    assert disk.read_text() == both
    await ada.request.post(f"{api}/stop", headers=headers)
