"""Two collaborators in one notebook, in real JupyterLab through the hub's proxy: each
sees the other's edits live and under the other's own name, they share one kernel, and
the saved file keeps both cells."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from cocalc_k8s.core.jupyter_identity import color_of
from cocalc_k8s.keys import CONTENT_ORIGINS

pytest.importorskip("jupyter_server_ydoc")
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "first", "metadata": {},
               "outputs": [], "source": ""}],
    "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}  # fmt: skip


async def signed_in(browser: Any, hub: str, name: str, email: str) -> tuple[Any, Any, str]:
    """A browser context of a new account: (context, page, CSRF token)."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(hub + "/sign-up")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", "a long password")
    await page.click("form[data-testid=sign-up-form] button[type=submit]")
    await page.wait_for_url(hub + "/")
    csrf = str(await page.get_attribute("meta[name=csrf-token]", "content"))
    return context, page, csrf


async def disk_notebook(page: Any, api: str, wanted: list[str], deadline: float) -> list[str]:
    """The sources of the notebook's cells on disk, once every text in `wanted` is there."""
    end = time.monotonic() + deadline
    while True:
        response = await page.request.get(f"{api}/files/shared.ipynb")
        try:
            cells = json.loads(await response.text())["cells"]
        except ValueError:  # caught between two writes of Jupyter's
            cells = []
        sources = ["".join(c["source"]) for c in cells]
        if all(any(text in source for source in sources) for text in wanted):
            return sources
        assert time.monotonic() < end, f"not saved with {wanted}: {sources}"
        await asyncio.sleep(0.25)  # polling the file with a deadline


async def test_two_collaborators_edit_one_notebook_live(browser: Any, make_client: Any) -> None:
    client = await make_client()
    hub = str(client.make_url("")).rstrip("/")
    _, ada, ada_csrf = await signed_in(browser, hub, "Ada Lovelace", "ada@example.org")
    _, grace, _ = await signed_in(browser, hub, "Grace Hopper", "grace@example.org")
    response = await ada.request.post(
        hub + "/api/v2/projects", data={"title": "rtc"}, headers={"X-CSRF-Token": ada_csrf}
    )
    project_id = (await response.json())["project_id"]
    api = f"{hub}/api/v2/projects/{project_id}"
    response = await ada.request.post(
        f"{api}/collaborators",
        data={"email": "grace@example.org"},
        headers={"X-CSRF-Token": ada_csrf},
    )
    assert response.status == 201, await response.text()
    response = await ada.request.put(
        f"{api}/files/shared.ipynb",
        data=json.dumps(NOTEBOOK).encode(),
        headers={"X-CSRF-Token": ada_csrf},
    )
    assert response.ok, await response.text()

    url = f"{client.app[CONTENT_ORIGINS].url_for(project_id)}/{project_id}"
    url += "/port/jupyterlab/lab/tree/shared.ipynb"
    # The project is stopped: Ada's visit starts it and JupyterLab, Grace's joins.
    await ada.goto(url, timeout=120_000)
    await grace.goto(url, timeout=120_000)
    for page in (ada, grace):
        await page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)

    # Ada types in the first cell; Grace sees it as it is typed.
    await ada.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    await ada.keyboard.type('word = "from Ada"')
    first_at_grace = grace.locator(".jp-Notebook .jp-Cell .cm-content").first
    await first_at_grace.filter(has_text='word = "from Ada"').wait_for(timeout=30_000)

    # Grace runs Ada's cell (one kernel for both) and writes a second cell below it.
    await first_at_grace.click()
    await grace.keyboard.press("Shift+Enter")
    await grace.keyboard.press("Enter")  # edit the new cell below
    await grace.keyboard.type('print(word, "and from Grace")')
    await grace.keyboard.press("Shift+Enter")
    output = ".jp-OutputArea-output"
    for page in (ada, grace):
        await page.locator(output, has_text="from Ada and from Grace").wait_for(timeout=60_000)

    await ada.locator(".jp-Notebook .jp-Cell .cm-content").nth(1).click()
    # Each sees the other under their own name and colour (those of the hub's pages):
    # on the other's cursor in the notebook.
    for page, other, other_page in ((ada, "Grace Hopper", grace), (grace, "Ada Lovelace", ada)):
        account = await (await other_page.request.get(f"{hub}/api/v2/account")).json()
        colour = color_of(uuid.UUID(account["account_id"]))
        flag = page.locator(".jp-remote-userFlag", has_text=other).first
        await flag.wait_for(state="attached", timeout=30_000)
        shown = await flag.evaluate("e => getComputedStyle(e).borderTopColor")
        assert shown == "rgb({}, {}, {})".format(*bytes.fromhex(colour[1:])), shown
        assert await page.locator(".jp-remote-userFlag", has_text="Anonymous").count() == 0

    # Both save: the file on disk has both cells, neither lost.
    for page in (ada, grace):
        await page.keyboard.press("Control+s")
    sources = await disk_notebook(
        ada, api, ['word = "from Ada"', 'print(word, "and from Grace")'], deadline=30
    )
    assert len(sources) >= 2, sources
    await client.post(f"/api/v2/projects/{project_id}/stop", headers={"X-CSRF-Token": ada_csrf})


async def test_a_notebook_in_the_file_manager_opens_in_jupyterlab(
    browser: Any, make_client: Any
) -> None:
    client = await make_client()
    hub = str(client.make_url("")).rstrip("/")
    _, page, csrf = await signed_in(browser, hub, "Ada Lovelace", "nb@example.org")
    response = await page.request.post(
        hub + "/api/v2/projects", data={"title": "nb"}, headers={"X-CSRF-Token": csrf}
    )
    project_id = (await response.json())["project_id"]
    api = f"{hub}/api/v2/projects/{project_id}"
    for name, body in (("my nb.ipynb", json.dumps(NOTEBOOK).encode()), ("a.py", b"x = 1\n")):
        response = await page.request.put(
            f"{api}/files/{name}", data=body, headers={"X-CSRF-Token": csrf}
        )
        assert response.ok, await response.text()
    await page.goto(f"{hub}/projects/{project_id}/files/")
    notebook = page.locator("a.entry", has_text="my nb.ipynb")
    content = client.app[CONTENT_ORIGINS].url_for(project_id)
    expected = f"{content}/{project_id}/port/jupyterlab/lab/tree/my%20nb.ipynb"
    assert await notebook.get_attribute("href") == expected
    assert await notebook.get_attribute("target") == "_blank"
    script = page.locator("a.entry", has_text="a.py")
    assert await script.get_attribute("href") == f"/projects/{project_id}/edit/a.py"
