"""The published XSS payload families replayed in a real Chromium against the share
pages: none may run script (the test listens for dialogs, page errors, CSP violations
and a global the payloads would set), and none may survive in the HTML."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from tests.share.helpers import home_of, publish, write
from tests.share.inert import assert_inert
from tests.share.test_render import XSS_PAYLOADS
from tests.test_browser import Console, new_page
from tests.test_projects_api import new_project

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Dialog

pytestmark = pytest.mark.browser
RUN = "window.__pwned=1;alert(document.domain)"

KATEX = r"""
Typeset: $x^2 + \frac{1}{2}$

$$\href{javascript:window.__pwned=1}{click} \url{javascript:alert(1)}$$

$$\htmlData{foo=bar}{x} \includegraphics{/share} \htmlClass{x}{y} \htmlStyle{color:red}{z}$$

$$\def\x{\x\x}\x$$
"""


def evil_notebook() -> str:
    evil = f'"><script>{RUN}</script><img src=x onerror="{RUN}">'
    outputs = [
        {"output_type": "display_data", "metadata": {"filenames": {"image/png": evil},
         "image/png": {"width": evil, "height": evil}}, "data": {"image/png": "iVBORw0KGgo="}},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/svg+xml": f"<svg onload=\"{RUN}\"><script>{RUN}</script></svg>"}},
        {"output_type": "display_data", "metadata": {}, "data": {"text/html": evil}},
        {"output_type": "display_data", "metadata": {}, "data": {"application/javascript": RUN}},
        {"output_type": "display_data", "metadata": {},
         "data": {"application/vnd.jupyter.widget-view+json": {"model_id": evil}}},
        {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": evil}},
        {"output_type": "error", "ename": evil, "evalue": evil, "traceback": [evil]},
    ]  # fmt: skip
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "title": evil,
                "language_info": {"name": evil},
                "kernelspec": {"language": evil, "name": evil, "display_name": evil},
                "widgets": {"application/vnd.jupyter.widget-state+json": {"state": evil}},
            },
            "cells": [
                {"cell_type": "markdown", "id": "m", "metadata": {"tags": [evil]}, "source": evil},
                {
                    "cell_type": "code",
                    "id": "c",
                    "metadata": {"tags": [evil]},
                    "execution_count": 1,
                    "source": evil,
                    "outputs": outputs,
                },
            ],
        }
    )


# In the live DOM (after KaTeX ran): any event handler attribute or script URL.
LIVE_HANDLERS = """() => [...document.querySelectorAll('*')].flatMap(el => [...el.attributes]
  .filter(a => a.name.startsWith('on') || (['href', 'src', 'action', 'xlink:href']
    .includes(a.name) && /^\\s*(javascript|vbscript|data:text)/i.test(a.value)))
  .map(a => el.tagName + ' ' + a.name + '=' + a.value))"""


def _unexpected(errors: list[str]) -> list[str]:
    """Console errors other than the payloads' broken images (404s) and Chromium telling
    that the sandbox blocked a script."""
    allowed = ("Failed to load resource", "Blocked script execution")
    return [e for e in errors if not any(a in e for a in allowed)]


async def test_payloads_do_not_run_in_chromium(browser: Any, make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    home = home_of(alice, project_id)
    for n, payload in enumerate(XSS_PAYLOADS):
        write(home, f"x/p{n}.md", payload.replace("alert(1)", RUN))
    write(home, "x/katex.md", KATEX)
    write(home, "x/evil.ipynb", evil_notebook())
    write(home, "x/page.html", f"<h1>framed</h1><script>{RUN}</script><img src=x onerror='{RUN}'>")
    write(
        home,
        "x/pic.svg",
        f'<svg xmlns="http://www.w3.org/2000/svg" onload="{RUN}"><script>{RUN}</script></svg>',
    )
    write(home, "x/README.md", "[a](javascript:alert(1)) <a id=csrf-token>x</a>")
    item = await publish(
        alice, project_id, path="x", visibility="listed", description=f"<img src=x onerror={RUN}>"
    )
    hub = str(alice.client.make_url("/")).rstrip("/")
    console = Console()
    page = await new_page(browser, console)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    names = [f"p{n}.md" for n in range(len(XSS_PAYLOADS))]
    names += ["katex.md", "evil.ipynb", "page.html", "pic.svg", ""]
    for name in names:
        url = f"{hub}/share/{item['id']}/{name}"
        await page.goto(url, timeout=60_000)  # a busy machine: renders take seconds
        await page.wait_for_load_state("load")
        if name == "page.html":
            await page.click('[data-testid="share-view-rendered"]')
            frame = page.frame_locator("iframe[sandbox]")
            await frame.locator("h1").wait_for()
        assert await page.evaluate("window.__pwned") is None, name
        assert await page.evaluate(LIVE_HANDLERS) == [], name
        served = await (await alice.client.get(f"/share/{item['id']}/{name}")).text()
        body = served[served.index('data-testid="share-body"') :]
        body = body[body.index(">") + 1 : body.index("</section>")]
        if "</details>" in body:  # our own preview frame: sandboxed, no permissions
            frame, body = body.split("</details>", 1)
            assert "<iframe sandbox src=" in frame
        assert_inert(body)
    # KaTeX typeset the math (so the CSP lets the vendored script work) and refused the
    # untrusted macros.
    await page.goto(f"{hub}/share/{item['id']}/katex.md")
    await page.locator(".katex").first.wait_for()
    assert await page.locator("a[href^='javascript']").count() == 0
    assert await page.locator("img[src='/share']").count() == 0
    # The raw SVG is a download, never a document of the hub's origin.
    resp = await alice.client.get(f"/share/raw/{item['id']}/pic.svg")
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert dialogs == []
    assert await page.evaluate("window.__pwned") is None
    for error in _unexpected(console.errors):
        print("UNEXPECTED", error)
    assert _unexpected(console.errors) == []
