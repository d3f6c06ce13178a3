"""The Files tab in a real Chromium: a chunked upload that survives a failed chunk and a
page reload, a folder downloaded as a zip, images and a PDF in the viewer. The project
stays stopped throughout: the hub serves its files itself. A failing test leaves
screenshots (see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cocalc_k8s.keys import SETTINGS
from tests.test_browser import Console
from tests.test_browser_projects import create_project, open_tab, signed_up

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, Page, Request, Route, expect

pytestmark = pytest.mark.browser
CHUNK = 8 * 1024 * 1024
BIG = 20_000_000


@pytest.fixture
async def hub(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def project_page(browser: Browser, hub: str, client: Any) -> tuple[Page, Path]:
    page = await signed_up(browser, Console(), hub, "Fay")
    url = await create_project(page, hub, "Files")
    home = client.app[SETTINGS].data_dir / "projects" / url.rsplit("/", 1)[-1]
    await open_tab(page, "Files")
    # The tab's first listing makes the home; the tab can show before that request ends
    # (a full run once wrote into a home that did not exist yet).
    deadline = time.monotonic() + 20
    while not home.is_dir():
        assert time.monotonic() < deadline, f"the project's home {home} was never made"
        await asyncio.sleep(0.05)
    return page, home


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PDF = b"""%PDF-1.1
1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj
2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 144]/Contents 4 0 R>>endobj
4 0 obj<</Length 30>>stream
0 0 1 rg 20 20 200 100 re f
endstream endobj
trailer<</Root 1 0 R>>
%%EOF"""
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30">'
    b'<rect width="40" height="30"/></svg>'
)


async def test_chunked_upload_survives_a_failed_chunk_and_a_reload(
    hub: str, client: Any, browser: Browser, tmp_path: Path
) -> None:
    page, home = await project_page(browser, hub, client)
    # One chunk fails once (the connection drops), another arrives damaged once (the
    # hub refuses it by its SHA-256): both are sent again and the file arrives whole.
    aborted: list[str] = []
    damaged: list[str] = []
    digests: list[str | None] = []

    async def fail_once(route: Route, request: Request) -> None:
        if request.method == "PUT":
            digests.append(request.headers.get("content-digest"))
        offset = request.headers.get("upload-offset")
        if request.method == "PUT" and offset == str(CHUNK) and not aborted:
            aborted.append(request.url)
            await route.abort("connectionreset")
            return
        if request.method == "PUT" and offset == str(2 * CHUNK) and not damaged:
            damaged.append(request.url)
            body = bytearray(request.post_data_buffer or b"")
            body[100] ^= 0xFF
            await route.continue_(post_data=bytes(body))
            return
        await route.continue_()

    await page.route("**/uploads/*", fail_once)
    source = tmp_path / "big.bin"
    data = os.urandom(BIG)
    source.write_bytes(data)
    await page.locator("#upload-input").set_input_files(str(source))
    row = page.get_by_role("row", name="big.bin")
    await expect(row.get_by_test_id("size")).to_have_text("20 MB", timeout=60_000)
    assert aborted, "the failing chunk was never sent"
    assert damaged, "the damaged chunk was never sent"
    assert digests and all(d and d.startswith("sha-256=:") for d in digests), digests
    assert (home / "big.bin").read_bytes() == data
    await page.unroute("**/uploads/*")

    # A reload in the middle: the second chunk never gets an answer; after the reload
    # the same file continues from the offset the hub holds.
    held: list[Route] = []

    async def hold_second(route: Route, request: Request) -> None:
        if request.method == "PUT" and request.headers.get("upload-offset") == str(CHUNK):
            held.append(route)  # never answered: the page goes away first
            return
        await route.continue_()

    await page.route("**/uploads/*", hold_second)
    other = tmp_path / "resume.bin"
    other.write_bytes(data[::-1])
    await page.locator("#upload-input").set_input_files(str(other))
    progress = page.get_by_role("progressbar", name="Upload of resume.bin")
    await expect(progress).to_have_js_property("value", CHUNK)
    # Reload while the chunk is held, and only then let requests through: a held
    # request released by unroute() would be re-sent by the test harness, which is
    # not what a browser losing its page does.
    await page.reload()
    await page.unroute("**/uploads/*")
    await expect(page.get_by_test_id("resumable")).to_contain_text("resume.bin")
    offsets: list[str] = []
    page.on(
        "request",
        lambda r: offsets.append(r.headers.get("upload-offset", "")) if r.method == "PUT" else None,
    )
    await page.locator("#upload-input").set_input_files(str(other))
    row = page.get_by_role("row", name="resume.bin")
    await expect(row.get_by_test_id("size")).to_have_text("20 MB", timeout=60_000)
    # Resumed from what the hub kept (a half-sent chunk's bytes count), not from 0.
    assert int(offsets[0]) >= CHUNK, offsets
    arrived = (home / "resume.bin").read_bytes()
    first_difference = next(
        (i for i, (a, b) in enumerate(zip(arrived, data[::-1], strict=False)) if a != b), None
    )
    assert (len(arrived), first_difference) == (BIG, None), offsets
    await expect(page.get_by_test_id("resumable")).to_be_hidden()


async def test_folder_zip_and_viewers(
    hub: str, client: Any, browser: Browser, tmp_path: Path
) -> None:
    page, home = await project_page(browser, hub, client)
    tree = {
        "results/a.txt": b"alpha",
        "results/sub/b.bin": os.urandom(50_000),
        "results/sub/deeper/c.txt": b"gamma",
        "pics/red.png": png(32, 16),
        "pics/shape.svg": SVG,
        "pics/paper.pdf": PDF,
    }
    for name, content in tree.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_bytes(content)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    os.symlink(outside, home / "results/sub/escape")
    await page.reload()  # the listing was read before these files were there

    await page.get_by_role("link", name="results/").click()
    await expect(page.get_by_role("row", name="a.txt")).to_be_visible()
    async with page.expect_download() as info:
        await page.get_by_test_id("zip-folder").click()
    download = await info.value
    assert download.suggested_filename == "results.zip"
    archive = zipfile.ZipFile(
        io.BytesIO(await asyncio.to_thread(Path(await download.path()).read_bytes))
    )
    got = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    assert got == {
        k.removeprefix("results/"): v for k, v in tree.items() if k.startswith("results/")
    }

    await page.get_by_role("link", name="Home").click()
    await page.get_by_role("link", name="pics/").click()
    for name in ("red.png", "shape.svg"):
        await page.get_by_role("link", name=name).click()
        image = page.get_by_test_id("viewer-image")
        await expect(image).to_be_visible()
        await expect(image).to_have_js_property("complete", True)
        assert await image.evaluate("img => img.naturalWidth") in (32, 40)
        await page.get_by_role("button", name="Close").click()
        await expect(page.get_by_test_id("viewer")).to_have_count(0)

    async with page.expect_response(lambda r: "paper.pdf" in r.url) as response_info:
        await page.get_by_role("link", name="paper.pdf").click()
    response = await response_info.value
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    policy = await response.header_value("content-security-policy")
    assert policy is not None and "sandbox" in policy, policy
    frame = page.get_by_test_id("viewer-pdf")
    await expect(frame).to_be_visible()
    await expect(frame).to_have_attribute("title", "PDF: paper.pdf")


PROBE = """async (base) => {
  const load = (element) => new Promise((resolve) => {
    element.onload = () => resolve("loaded");
    element.onerror = () => resolve("refused");
    document.head.append(element);
  });
  const script = (src, type) => {
    const element = document.createElement("script");
    if (type) element.type = type;
    element.src = src;
    return element;
  };
  const sheet = document.createElement("link");
  sheet.rel = "stylesheet";
  sheet.href = base + "s.css";
  const worker = await new Promise((resolve) => {
    const w = new Worker(base + "w.js");
    w.onmessage = (event) => resolve(event.data);
    w.onerror = () => resolve("refused");
  });
  return {
    control: await load(script("/static/dialog.js", "module")),
    classic: await load(script(base + "x.js")),
    module: await load(script(base + "m.mjs", "module")),
    sheet: await load(sheet),
    worker,
    pwned: window.pwned ?? null,
    outline: getComputedStyle(document.body).outlineStyle,
  };
}"""


async def test_project_files_never_run_as_scripts_of_the_hub(
    hub: str, client: Any, browser: Browser
) -> None:
    """What an HTML injection in a hub page could add: `<script src>` (classic or
    module), a stylesheet or a worker from the files API. `script-src 'self'` lets them
    through; the type the hub gives project files and nosniff stop them."""
    page, home = await project_page(browser, hub, client)
    (home / "x.js").write_bytes(b"window.pwned = 'classic';")
    (home / "m.mjs").write_bytes(b"window.pwned = 'module';")
    (home / "s.css").write_bytes(b"body { outline: 3px solid red; }")
    (home / "w.js").write_bytes(b"postMessage('worker ran');")
    project_id = page.url.rstrip("/").split("/projects/", 1)[1].split("/", 1)[0]
    found = await page.evaluate(PROBE, f"/api/v2/projects/{project_id}/files/")
    assert found == {
        "control": "loaded",  # the probe can see a script load
        "classic": "refused",
        "module": "refused",
        "sheet": "refused",
        "worker": "refused",
        "pwned": None,
        "outline": "none",
    }
