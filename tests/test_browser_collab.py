"""Editing together in a real Chromium (issue 13): two accounts, both collaborators, in
one file at once; the file on disk follows; a change made on disk reaches both editors;
undo is per user; a page kept open across a hub restart that rebuilt the document from
disk shows no text twice. The projects stay stopped: the hub owns their files.
A failing test leaves screenshots (see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

from cocalc_k8s.app import create_app
from cocalc_k8s.core.settings import Settings
from cocalc_k8s.keys import CONTENT_GATE
from tests.conftest import unique_email
from tests.test_browser import Console, new_page

with contextlib.suppress(ImportError):  # reported by the browser fixture
    from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser
KEYSTROKES = 200
DISK_DEADLINE = 5.0  # the hub saves 1.5 s after the last change; a loaded machine is slow
EDITOR = ".cm-content"


class Hub:
    """A hub on a fixed loopback port that a test can stop and start again (the pages'
    origin must stay the same), on the test's database and data directory."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.port = 0
        self.runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = create_app(self.settings, database_url=self.database_url)
        self.runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        app[CONTENT_GATE].hub_url = self.base

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def hub(make_settings: Any, database_url: str) -> AsyncIterator[Hub]:
    running = Hub(make_settings(content_port=0), database_url)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def signed_up(browser: Browser, console: Console, hub: Hub, name: str) -> Page:
    """A page signed in as a new account (through the API, in the page's own context)."""
    page = await new_page(browser, console)
    email = unique_email(name.lower())
    response = await page.request.post(
        f"{hub.base}/api/v2/auth/sign-up",
        data={"email": email, "password": "correct horse battery", "name": name},
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    page.csrf = body["csrf_token"]  # type: ignore[attr-defined]
    page.email = email  # type: ignore[attr-defined]
    return page


async def shared_project(owner: Page, friend: Page, hub: Hub) -> str:
    headers = {"X-CSRF-Token": owner.csrf}  # type: ignore[attr-defined]
    response = await owner.request.post(
        f"{hub.base}/api/v2/projects", data={"title": "Together"}, headers=headers
    )
    assert response.status == 201, await response.text()
    project_id = str((await response.json())["project_id"])
    response = await owner.request.post(
        f"{hub.base}/api/v2/projects/{project_id}/collaborators",
        data={"email": friend.email},  # type: ignore[attr-defined]
        headers=headers,
    )
    assert response.status == 201, await response.text()
    return project_id


def home_of(hub: Hub, project_id: str) -> Path:
    return hub.settings.data_dir / "projects" / project_id


async def open_file(page: Page, hub: Hub, project_id: str, path: str) -> None:
    await page.goto(f"{hub.base}/projects/{project_id}/edit/{path}")
    await expect(page.get_by_test_id("save-state")).to_have_text("Saved")


# The editor's lines without the collaborators' cursor widgets (their names are text too).
# The files here are short: CodeMirror renders every line.
TEXT = r"""() => [...document.querySelectorAll(".cm-content .cm-line")].map((line) => {
  const copy = line.cloneNode(true);
  copy.querySelectorAll(".cm-ySelectionCaret").forEach((caret) => caret.remove());
  return copy.textContent.replaceAll("\u2060", "");
}).join("\n")"""


async def text_of(page: Page) -> str:
    text: str = await page.evaluate(TEXT)
    return text


async def eventually(condition: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def same_text(pages: list[Page], expected: str, within: float = 10.0) -> None:
    async def ok() -> bool:
        return all([await text_of(p) == expected for p in pages])

    try:
        await eventually(ok, "the editors did not converge", within)
    except AssertionError:
        texts = [await text_of(p) for p in pages]
        raise AssertionError(f"expected {expected!r}, editors show {texts!r}") from None


async def on_disk(path: Path, expected: str, within: float = DISK_DEADLINE) -> None:
    async def ok() -> bool:
        return await asyncio.to_thread(path.read_text) == expected

    await eventually(ok, f"{path.name} on disk is not the shared text", within)


async def put_cursor_at_end_of_line(page: Page, line: int) -> None:
    await page.locator(EDITOR).locator(".cm-line").nth(line - 1).click()
    await page.keyboard.press("End")


async def type_each(page: Page, keys: str) -> None:
    for key in keys:
        await page.keyboard.type(key)


def keys_for(seed: str) -> str:
    """KEYSTROKES characters, none of them an auto-closing bracket or quote."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-+=*.,;:_ "
    out = []
    number = int(uuid.uuid5(uuid.NAMESPACE_URL, seed).hex, 16)
    for _ in range(KEYSTROKES):
        number, index = divmod(number * 6364136223846793005 + 1442695040888963407, len(alphabet))
        out.append(alphabet[index])
    return "".join(out)


async def two_editors(
    browser: Browser,
    hub: Hub,
    text: str,
    name: str = "shared.txt",
    before_open: Callable[[Page], object] | None = None,
) -> tuple[Page, Page, Path, Console, Console]:
    ada_console, bea_console = Console(), Console()
    ada = await signed_up(browser, ada_console, hub, "Ada")
    bea = await signed_up(browser, bea_console, hub, "Bea")
    project_id = await shared_project(ada, bea, hub)
    file = home_of(hub, project_id) / name
    await asyncio.to_thread(file.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(file.write_text, text)
    if before_open is not None:
        before_open(ada)
    await open_file(ada, hub, project_id, name)
    await open_file(bea, hub, project_id, name)
    ada.project_id = project_id  # type: ignore[attr-defined]
    return ada, bea, file, ada_console, bea_console


async def test_two_collaborators_type_into_one_file_at_once(hub: Hub, browser: Browser) -> None:
    ada, bea, file, ada_console, bea_console = await two_editors(browser, hub, "A:\nB:\n")
    await same_text([ada, bea], "A:\nB:\n")
    await put_cursor_at_end_of_line(ada, 1)
    await put_cursor_at_end_of_line(bea, 2)
    ada_keys, bea_keys = keys_for("ada"), keys_for("bea")
    await asyncio.gather(type_each(ada, ada_keys), type_each(bea, bea_keys))
    # Each typed at their own cursor: each one's keystrokes are one run, all of them, once.
    expected = f"A:{ada_keys}\nB:{bea_keys}\n"
    await same_text([ada, bea], expected)
    await expect(ada.get_by_test_id("save-state")).to_have_text("Saved")
    await expect(bea.get_by_test_id("save-state")).to_have_text("Saved")
    await on_disk(file, expected)

    # Each sees the other's cursor with their name, and the other in "who is here".
    await expect(ada.locator(".cm-ySelectionInfo")).to_have_text("Bea")
    await expect(bea.locator(".cm-ySelectionInfo")).to_have_text("Ada")
    await expect(ada.get_by_test_id("editor-people")).to_contain_text("Bea")
    await expect(bea.get_by_test_id("editor-people")).to_contain_text("Ada")
    errors = ada_console.errors + bea_console.errors
    assert errors == [], errors


ENGINE_IO_TEXT = re.compile(r"^(0\{.*|[23](probe)?|5|6)$")  # open, ping/pong, upgrade, noop


async def test_the_page_speaks_msgpack_one_binary_frame_per_message(
    hub: Hub, browser: Browser
) -> None:
    """The web app's Socket.IO encoding is msgpack (docs/realtime.md): every Socket.IO
    message on its WebSocket, a keystroke's update and its ack included, is one binary
    frame; text frames are engine.io's own (open, pings)."""
    frames: list[tuple[str, str | bytes]] = []

    def record(ws: Any) -> None:
        if "/socket.io/" in ws.url:
            ws.on("framesent", lambda payload: frames.append(("sent", payload)))
            ws.on("framereceived", lambda payload: frames.append(("received", payload)))

    ada, bea, _, ada_console, bea_console = await two_editors(
        browser, hub, "x\n", "frames.txt", before_open=lambda ada: ada.on("websocket", record)
    )
    joined = len([f for f in frames if f[0] == "sent" and isinstance(f[1], bytes)])
    await put_cursor_at_end_of_line(ada, 1)
    await type_each(ada, "abc")
    await same_text([ada, bea], "xabc\n")
    sent = [p for d, p in frames if d == "sent" and isinstance(p, bytes)]
    received = [p for d, p in frames if d == "received" and isinstance(p, bytes)]
    assert len(sent) - joined >= 3  # a binary frame per keystroke (and per cursor move)
    assert received  # the join's answer, the acks
    texts = [p for _, p in frames if isinstance(p, str)]
    assert texts and all(ENGINE_IO_TEXT.match(t) for t in texts), texts
    errors = ada_console.errors + bea_console.errors
    assert errors == [], errors


async def test_a_change_on_disk_reaches_both_editors(hub: Hub, browser: Browser) -> None:
    ada, bea, file, *_ = await two_editors(browser, hub, "first line\n")
    await put_cursor_at_end_of_line(ada, 1)
    await type_each(ada, " typed")
    await same_text([ada, bea], "first line typed\n")
    await on_disk(file, "first line typed\n")
    # A terminal (or a script) appends to the open file.
    with await asyncio.to_thread(file.open, "a") as out:
        await asyncio.to_thread(out.write, "from the shell\n")
    await same_text([ada, bea], "first line typed\nfrom the shell\n")
    # Typing goes on where it was, nothing lost either way.
    await type_each(ada, " more")
    await same_text([ada, bea], "first line typed more\nfrom the shell\n")
    await on_disk(file, "first line typed more\nfrom the shell\n")


async def test_keys_typed_before_the_shared_document_binds_stay_where_they_were_typed(
    hub: Hub, browser: Browser
) -> None:
    # The editor shows the file before Yjs has loaded; what is typed meanwhile is merged in
    # when the shared document binds, and the cursor must stay where the user is typing
    # (it once jumped before the merged text: the next keys landed in front of it).
    console = Console()
    ada = await signed_up(browser, console, hub, "Ada")
    bea = await signed_up(browser, Console(), hub, "Bea")
    project_id = await shared_project(ada, bea, hub)
    file = home_of(hub, project_id) / "early.txt"
    await asyncio.to_thread(file.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(file.write_text, "first\n")
    release = asyncio.Event()

    async def held(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await ada.route(re.compile(r"/vendor/yjs-[^/]*\.js$"), held)
    await ada.goto(f"{hub.base}/projects/{project_id}/edit/early.txt")
    save_state = ada.get_by_test_id("save-state")
    await expect(save_state).to_have_text("Connecting…")
    await put_cursor_at_end_of_line(ada, 1)
    await type_each(ada, " early")
    release.set()
    await expect(save_state).to_have_text("Saved")
    await type_each(ada, " late")
    await same_text([ada], "first early late\n")
    await on_disk(file, "first early late\n")
    assert console.errors == [], console.errors


async def test_undo_undoes_only_ones_own_edits(hub: Hub, browser: Browser) -> None:
    ada, bea, _, *_ = await two_editors(browser, hub, "\n\n")
    await put_cursor_at_end_of_line(ada, 1)
    await type_each(ada, "alpha")
    await same_text([ada, bea], "alpha\n\n")
    await put_cursor_at_end_of_line(bea, 2)
    await type_each(bea, "beta")
    await same_text([ada, bea], "alpha\nbeta\n")
    await ada.keyboard.press("Control+z")
    await same_text([ada, bea], "\nbeta\n")
    await ada.keyboard.press("Control+y")
    await same_text([ada, bea], "alpha\nbeta\n")
    await bea.keyboard.press("Control+z")
    await same_text([ada, bea], "alpha\n\n")


async def forget_document(database_url: str, project_id: str) -> None:
    """What makes the hub rebuild a document from disk: its stored state is gone."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            ids = sa.text("SELECT id FROM documents WHERE project_id = :p")
            for table in ("document_updates", "document_checkpoints"):
                await conn.execute(
                    sa.text(f"DELETE FROM {table} WHERE document_id IN ({ids.text})"),
                    {"p": uuid.UUID(project_id)},
                )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("rebuilt", [False, True], ids=["same-epoch", "rebuilt-from-disk"])
async def test_a_page_open_across_a_hub_restart_shows_no_text_twice(
    hub: Hub, browser: Browser, database_url: str, rebuilt: bool
) -> None:
    ada, bea, file, *_ = await two_editors(browser, hub, "line one\nline two\n")
    await put_cursor_at_end_of_line(ada, 2)
    await type_each(ada, " saved")
    await same_text([ada, bea], "line one\nline two saved\n")
    await on_disk(file, "line one\nline two saved\n")
    await hub.stop()
    await expect(ada.get_by_test_id("save-state")).to_contain_text("Offline")
    # Typed while the hub is down: kept in the page, sent after the reconnect.
    await type_each(ada, " offline")
    if rebuilt:
        await forget_document(database_url, ada.project_id)  # type: ignore[attr-defined]
    await hub.start()
    expected = "line one\nline two saved offline\n"
    await same_text([ada, bea], expected, within=20.0)
    await expect(ada.get_by_test_id("save-state")).to_have_text("Saved")
    await on_disk(file, expected)
    # And the editors still work together.
    await put_cursor_at_end_of_line(bea, 2)
    await type_each(bea, "!")
    await same_text([ada, bea], expected[:-1] + "!\n")


async def test_the_listing_shows_who_has_a_file_open(hub: Hub, browser: Browser) -> None:
    ada, bea, _, ada_console, _ = await two_editors(browser, hub, "notes\n")
    project_id = ada.project_id  # type: ignore[attr-defined]
    await ada.goto(f"{hub.base}/projects/{project_id}/files/")
    row = ada.get_by_role("row", name=re.compile("shared.txt"))
    await expect(row.get_by_test_id("file-people")).to_have_text("Bea")
    await expect(row.get_by_test_id("file-people")).to_be_visible()
    # Bea goes elsewhere: the listing follows.
    await bea.goto(f"{hub.base}/projects")
    await expect(row.get_by_test_id("file-people")).to_be_hidden()
    await open_file(bea, hub, project_id, "shared.txt")
    await expect(row.get_by_test_id("file-people")).to_have_text("Bea")
    assert ada_console.errors == []


async def test_binary_and_large_files_open_read_only(
    make_settings: Any, database_url: str, browser: Browser
) -> None:
    small = Hub(make_settings(content_port=0, document_max_mb=1), database_url)
    await small.start()
    try:
        console = Console()
        ada = await signed_up(browser, console, small, "Ada")
        bea = await signed_up(browser, Console(), small, "Bea")
        project_id = await shared_project(ada, bea, small)
        home = home_of(small, project_id)
        await asyncio.to_thread(home.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread((home / "blob.txt").write_bytes, b"\x00\x01binary\xff")
        big = "a line of a large text file\n" * 40_000  # 1.1 MB, over document_max_mb
        await asyncio.to_thread((home / "big.txt").write_text, big)

        await ada.goto(f"{small.base}/projects/{project_id}/edit/blob.txt")
        await expect(ada.get_by_test_id("save-state")).to_have_text("Read-only")
        await expect(ada.get_by_test_id("editor-notice")).to_contain_text("binary")
        await expect(ada.locator(EDITOR)).to_have_attribute("contenteditable", "false")

        await ada.goto(f"{small.base}/projects/{project_id}/edit/big.txt")
        await expect(ada.get_by_test_id("save-state")).to_have_text("Read-only")
        await expect(ada.get_by_test_id("editor-notice")).to_contain_text("over 1 MB")
        await expect(ada.locator(EDITOR)).to_contain_text("a line of a large text file")
        await ada.locator(EDITOR).click()
        await ada.keyboard.type("no")
        assert await asyncio.to_thread((home / "big.txt").read_text) == big
        await expect(ada.get_by_role("button", name="Save", exact=True)).to_be_hidden()
        assert console.errors == [], console.errors
    finally:
        await small.stop()


async def test_a_removed_collaborator_stops_editing_at_once(hub: Hub, browser: Browser) -> None:
    ada, bea, file, *_ = await two_editors(browser, hub, "shared text\n")
    project_id = ada.project_id  # type: ignore[attr-defined]
    account = await (await bea.request.get(f"{hub.base}/api/v2/account")).json()
    response = await ada.request.delete(
        f"{hub.base}/api/v2/projects/{project_id}/collaborators/{account['account_id']}",
        headers={"X-CSRF-Token": ada.csrf},  # type: ignore[attr-defined]
    )
    assert response.status in (200, 204), await response.text()
    await expect(bea.get_by_role("alert")).to_contain_text("no longer a collaborator")
    await expect(bea.locator(EDITOR)).to_have_attribute("contenteditable", "false")
    await expect(ada.get_by_test_id("editor-people")).to_be_hidden()
    # Ada's edits no longer reach Bea's page.
    await put_cursor_at_end_of_line(ada, 1)
    await type_each(ada, " more")
    await on_disk(file, "shared text more\n")
    assert await text_of(bea) == "shared text\n"
