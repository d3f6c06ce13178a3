"""TimeTravel's API on a stopped project: versions of hub writes and of editor edits with
their authors, a version's text, diffs, restores (a version of their own, seen by every
open editor), renames and deletions through the hub, a restart, strangers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cocalc_k8s.keys import SETTINGS
from tests.realtime.client import wait_for
from tests.realtime.conftest import member

pytestmark = pytest.mark.timeout(90)


def home(member: Any, project_id: str) -> Path:
    return Path(member.user.client.server.app[SETTINGS].data_dir) / "projects" / project_id


async def wait_async(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def put(m: Any, project_id: str, path: str, text: str) -> None:
    resp = await m.user.client.put(
        f"/api/v2/projects/{project_id}/files/{path}", data=text.encode(), headers=m.user.headers
    )
    assert resp.status == 201, await resp.text()


async def history(m: Any, project_id: str, path: str, **query: Any) -> dict[str, Any]:
    status, body = await m.user.call(
        "GET",
        f"/api/v2/projects/{project_id}/history?path={path}"
        + "".join(f"&{k}={v}" for k, v in query.items()),
    )
    assert status == 200, body
    return dict(body)


async def version_text(m: Any, project_id: str, path: str, version: int) -> str:
    resp = await m.user.client.get(
        f"/api/v2/projects/{project_id}/history/versions/{version}?path={path}"
    )
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def test_hub_writes_are_versions_with_their_author(team: Any) -> None:
    project_id, (alice, bob) = await team(2)
    texts = ["one\n", "one\ntwo\n", "one\ntwo\nthree\n"]
    await put(alice, project_id, "notes.txt", texts[0])
    await put(bob, project_id, "notes.txt", texts[1])
    await put(bob, project_id, "notes.txt", texts[1])  # the same bytes: no new version
    await put(alice, project_id, "notes.txt", texts[2])
    found = await history(alice, project_id, "notes.txt")
    assert [v["version"] for v in found["versions"]] == [3, 2, 1]
    assert [v["kind"] for v in found["versions"]] == ["api"] * 3
    who = [[a["account_id"] for a in v["authors"]] for v in found["versions"]]
    assert who == [[alice.user.account_id], [bob.user.account_id], [alice.user.account_id]]
    assert found["versions"][0]["authors"][0]["name"] == "Test User"
    assert [v["size"] for v in found["versions"]] == [len(t) for t in reversed(texts)]
    for i, text in enumerate(texts, start=1):
        assert await version_text(bob, project_id, "notes.txt", i) == text

    page = await history(alice, project_id, "notes.txt", limit=2)
    assert [v["version"] for v in page["versions"]] == [3, 2] and page["more"]
    rest = await history(alice, project_id, "notes.txt", limit=2, before=2)
    assert [v["version"] for v in rest["versions"]] == [1] and not rest["more"]

    status, body = await alice.user.call(
        "GET", f"/api/v2/projects/{project_id}/history/diff?path=notes.txt&from=1&to=3"
    )
    assert status == 200
    assert body["ops"] == [["=", "one\n"], ["+", "two\nthree\n"]]

    resp = await alice.user.client.get(
        f"/api/v2/projects/{project_id}/history/versions/2?path=notes.txt&download=1"
    )
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="notes.v2.txt"')
    assert await resp.text() == texts[1]


async def test_a_change_nobody_reported_is_recorded_when_the_history_is_read(team: Any) -> None:
    project_id, (alice,) = await team(1)
    await put(alice, project_id, "a.py", "x = 1\n")
    (home(alice, project_id) / "a.py").write_text("x = 2\n")  # behind the hub's back
    found = await history(alice, project_id, "a.py")
    newest = found["versions"][0]
    assert (newest["version"], newest["kind"], newest["authors"]) == (2, "disk", [])
    assert await version_text(alice, project_id, "a.py", 2) == "x = 2\n"


async def test_restore_is_a_new_version_and_reaches_every_open_editor(team: Any) -> None:
    project_id, (alice, bob) = await team(2)
    file = home(alice, project_id) / "essay.md"
    await put(alice, project_id, "essay.md", "# Essay\n")
    a, b = alice.client(), bob.client()
    await a.connect()
    await b.connect()
    await a.join(project_id, "essay.md")
    await b.join(project_id, "essay.md")
    await a.append("Alice was here.\n")
    await wait_for(lambda: file.read_text() == "# Essay\nAlice was here.\n", within=8)
    await b.append("Bob too.\n")
    final = "# Essay\nAlice was here.\nBob too.\n"
    await wait_for(lambda: file.read_text() == final, within=8)

    async def versions() -> list[dict[str, Any]]:
        return list((await history(alice, project_id, "essay.md"))["versions"])

    found: list[dict[str, Any]] = []

    async def edits_recorded() -> bool:
        nonlocal found
        found = await versions()
        return bool(found) and found[0]["size"] == len(final)

    await wait_async(edits_recorded, within=10)
    edit_authors = {a["account_id"] for v in found if v["kind"] == "edit" for a in v["authors"]}
    assert edit_authors == {alice.user.account_id, bob.user.account_id}
    assert found[-1]["kind"] == "api"  # the first version: the upload

    status, body = await bob.user.call(
        "POST", f"/api/v2/projects/{project_id}/history/restore", {"path": "essay.md", "version": 1}
    )
    assert status == 201, body
    newest = (await versions())[0]
    assert newest["version"] == body["version"] and newest["kind"] == "restore"
    assert newest["restored_from"] == 1
    assert [x["account_id"] for x in newest["authors"]] == [bob.user.account_id]
    await wait_for(lambda: a.text == b.text == "# Essay\n", within=5)
    await wait_for(lambda: file.read_text() == "# Essay\n", within=8)
    assert await version_text(alice, project_id, "essay.md", 2) != "# Essay\n"  # kept
    await a.close()
    await b.close()


async def test_renames_and_deletions_through_the_hub(team: Any) -> None:
    project_id, (alice,) = await team(1)
    await put(alice, project_id, "src/old.py", "a = 1\n")
    await put(alice, project_id, "src/old.py", "a = 2\n")
    status, _ = await alice.user.call(
        "POST",
        f"/api/v2/projects/{project_id}/files-ops",
        {"op": "move", "src": "src", "dst": "lib"},
    )
    assert status == 204
    moved = await history(alice, project_id, "lib/old.py")
    assert [v["version"] for v in moved["versions"]] == [2, 1]
    assert await version_text(alice, project_id, "lib/old.py", 1) == "a = 1\n"
    assert (await history(alice, project_id, "src/old.py"))["versions"] == []

    resp = await alice.user.client.delete(
        f"/api/v2/projects/{project_id}/files/lib/old.py", headers=alice.user.headers
    )
    assert resp.status == 204
    status, body = await alice.user.call(
        "GET", f"/api/v2/projects/{project_id}/history/deleted?path=lib"
    )
    assert status == 200
    assert [(f["path"], f["version"], f["size"]) for f in body["files"]] == [("lib/old.py", 2, 6)]
    gone = await history(alice, project_id, "lib/old.py")
    assert gone["deleted"] is not None and len(gone["versions"]) == 2

    status, body = await alice.user.call(
        "POST",
        f"/api/v2/projects/{project_id}/history/restore",
        {"path": "lib/old.py", "version": 1},
    )
    assert status == 201 and body["version"] == 3
    assert (home(alice, project_id) / "lib" / "old.py").read_text() == "a = 1\n"
    back = await history(alice, project_id, "lib/old.py")
    assert back["deleted"] is None and [v["version"] for v in back["versions"]] == [3, 2, 1]
    status, body = await alice.user.call(
        "GET", f"/api/v2/projects/{project_id}/history/deleted?path="
    )
    assert body["files"] == []


async def test_history_survives_a_hub_restart(team: Any, make_client: Any) -> None:
    project_id, (alice,) = await team(1)
    await put(alice, project_id, "keep.txt", "first\n")
    await put(alice, project_id, "keep.txt", "second\n")
    await alice.user.client.close()
    hub = await make_client()
    async with aiohttp.ClientSession(
        str(hub.make_url("")), headers={"Authorization": f"Bearer {alice.key}"}
    ) as session:
        async with session.get(f"/api/v2/projects/{project_id}/history?path=keep.txt") as resp:
            body = await resp.json()
        assert [v["version"] for v in body["versions"]] == [2, 1]
        async with session.get(
            f"/api/v2/projects/{project_id}/history/versions/1?path=keep.txt"
        ) as resp:
            assert await resp.text() == "first\n"


async def test_strangers_get_404_and_bad_input_a_clear_error(team: Any, make_client: Any) -> None:
    project_id, (alice,) = await team(1)
    await put(alice, project_id, "secret.txt", "s3cret\n")
    stranger = await member(await make_client(same_hub_as=alice.user.client))
    base = f"/api/v2/projects/{project_id}/history"
    for method, path, body in [
        ("GET", f"{base}?path=secret.txt", None),
        ("GET", f"{base}/versions/1?path=secret.txt", None),
        ("GET", f"{base}/diff?path=secret.txt&from=1&to=1", None),
        ("POST", f"{base}/restore", {"path": "secret.txt", "version": 1}),
        ("GET", f"{base}/deleted?path=", None),
    ]:
        status, answer = await stranger.user.call(method, path, body)
        assert status == 404, (path, answer)
        assert "s3cret" not in json.dumps(answer)
    for path, message in [
        (f"{base}", "path is required"),
        (f"{base}?path=secret.txt&limit=0", "limit must be between"),
        (f"{base}/versions/x?path=secret.txt", "version must be a whole number"),
        (f"{base}/diff?path=secret.txt&from=1", "to must be a whole number"),
        (f"{base}?path=../../etc/passwd", "path must name a file"),
    ]:
        status, answer = await alice.user.call("GET", path)
        assert status == 400 and message in answer["error"], (path, answer)
    status, answer = await alice.user.call("GET", f"{base}/versions/9?path=secret.txt")
    assert status == 404 and "no version 9" in answer["error"]
    status, answer = await alice.user.call("POST", f"{base}/restore", {"path": "secret.txt"})
    assert status == 400 and "version" in answer["error"]


async def test_a_file_deleted_while_open_is_written_again_not_emptied(team: Any) -> None:
    project_id, (alice,) = await team(1)
    file = home(alice, project_id) / "keep.md"
    await put(alice, project_id, "keep.md", "# Keep me\n")
    a = alice.client()
    await a.connect()
    await a.join(project_id, "keep.md")
    file.unlink()  # a terminal's rm while the editor is open
    await a.append("more\n")
    await wait_for(lambda: file.exists() and file.read_text() == "# Keep me\nmore\n", within=8)
    assert a.text == "# Keep me\nmore\n"
    await a.close()
