"""A project's files through the hub: confined to the home, atomic, streamed, Range."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import sign_up
from tests.test_projects_api import User, new_project


@pytest.fixture
async def owner(make_client: Any) -> User:
    client = await make_client(max_file_mb=1)
    return User(client, await sign_up(client))


def home_of(user: User, project_id: str) -> Path:
    from cocalc_k8s.keys import SETTINGS

    return user.client.app[SETTINGS].data_dir / "projects" / project_id


async def put(user: User, project_id: str, path: str, data: bytes) -> int:
    resp = await user.client.put(
        f"/api/v2/projects/{project_id}/files/{path}", data=data, headers=user.headers
    )
    return resp.status


async def test_write_read_list_delete(owner: User) -> None:
    project_id = await new_project(owner)
    assert await put(owner, project_id, "notes/week1/a.txt", b"hello") == 201
    resp = await owner.client.get(f"/api/v2/projects/{project_id}/files/notes/week1/a.txt")
    assert resp.status == 200
    assert await resp.read() == b"hello"
    assert resp.headers["Content-Security-Policy"] == "sandbox"
    status, body = await owner.call("GET", f"/api/v2/projects/{project_id}/listing?path=notes")
    assert status == 200
    assert [(e["name"], e["is_dir"]) for e in body["entries"]] == [("week1", True)]
    status, _ = await owner.call("DELETE", f"/api/v2/projects/{project_id}/files/notes")
    assert status == 204
    assert not (home_of(owner, project_id) / "notes").exists()


async def test_range_and_etag(owner: User) -> None:
    project_id = await new_project(owner)
    await put(owner, project_id, "data.bin", bytes(range(256)))
    url = f"/api/v2/projects/{project_id}/files/data.bin"
    resp = await owner.client.get(url, headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    assert await resp.read() == bytes(range(10, 20))
    assert resp.headers["Content-Range"] == "bytes 10-19/256"
    resp = await owner.client.get(url, headers={"Range": "bytes=-6"})
    assert await resp.read() == bytes(range(250, 256))
    resp = await owner.client.get(url, headers={"Range": "bytes=300-"})
    assert resp.status == 416
    etag = (await owner.client.get(url)).headers["ETag"]
    assert (await owner.client.get(url, headers={"If-None-Match": etag})).status == 304


async def test_html_is_an_attachment(owner: User) -> None:
    project_id = await new_project(owner)
    await put(owner, project_id, "page.html", b"<script>alert(1)</script>")
    resp = await owner.client.get(f"/api/v2/projects/{project_id}/files/page.html")
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert resp.headers["Content-Security-Policy"] == "sandbox"


async def test_too_large_upload_is_413_and_keeps_the_old_file(owner: User) -> None:
    project_id = await new_project(owner)
    await put(owner, project_id, "f.txt", b"old")
    assert await put(owner, project_id, "f.txt", b"x" * (1024**2 + 1)) == 413

    async def chunks() -> Any:  # no Content-Length: the limit holds while streaming
        for _ in range(5):
            yield b"y" * 300_000

    resp = await owner.client.put(
        f"/api/v2/projects/{project_id}/files/f.txt", data=chunks(), headers=owner.headers
    )
    assert resp.status == 413
    home = home_of(owner, project_id)
    assert (home / "f.txt").read_bytes() == b"old"
    assert [p.name for p in home.iterdir()] == ["f.txt"]  # no temporary file left


async def test_move_copy_mkdir(owner: User) -> None:
    project_id = await new_project(owner)
    base = f"/api/v2/projects/{project_id}"
    await put(owner, project_id, "a.txt", b"A")
    assert (await owner.call("POST", base + "/files-ops", {"op": "mkdir", "path": "d/e"}))[0] == 204
    assert (
        await owner.call(
            "POST", base + "/files-ops", {"op": "copy", "src": "a.txt", "dst": "d/b.txt"}
        )
    )[0] == 204
    assert (
        await owner.call(
            "POST", base + "/files-ops", {"op": "move", "src": "a.txt", "dst": "d/e/c.txt"}
        )
    )[0] == 204
    home = home_of(owner, project_id)
    assert (home / "d/b.txt").read_bytes() == b"A" and (home / "d/e/c.txt").read_bytes() == b"A"
    assert not (home / "a.txt").exists()
    status, body = await owner.call(
        "POST", base + "/files-ops", {"op": "copy", "src": "d/b.txt", "dst": "d/e/c.txt"}
    )
    assert status == 409
    status, body = await owner.call("POST", base + "/files-ops", {"op": "explode"})
    assert status == 400 and "op must be" in body["error"]


async def test_paths_cannot_leave_the_home(owner: User, make_client: Any) -> None:
    project_id = await new_project(owner)
    other_id = await new_project(owner, "other")
    await put(owner, other_id, "secret.txt", b"other project's secret")
    home = home_of(owner, project_id)
    await put(owner, project_id, "ok.txt", b"fine")
    os.symlink("/etc", home / "etc-link")
    os.symlink(home_of(owner, other_id) / "secret.txt", home / "sibling")
    base = f"/api/v2/projects/{project_id}"
    for path in (
        "..%2F" + other_id + "%2Fsecret.txt",
        "%2Fetc%2Fpasswd",
        "etc-link/passwd",
        "sibling",
        "a%00b",
    ):
        resp = await owner.client.get(f"{base}/files/{path}")
        assert resp.status in (400, 403, 404), path
        assert b"secret" not in await resp.read()
        resp = await owner.client.put(f"{base}/files/{path}", data=b"evil", headers=owner.headers)
        assert resp.status in (400, 403, 404), path
    status, _ = await owner.call("GET", f"{base}/listing?path=etc-link")
    assert status in (400, 403)
    # Copying a symlink copies the link itself, which still leads nowhere.
    await owner.call("POST", base + "/files-ops", {"op": "copy", "src": "sibling", "dst": "x"})
    assert (home / "x").is_symlink()
    resp = await owner.client.get(f"{base}/files/x")
    assert resp.status in (400, 403) and b"secret" not in await resp.read()
    status, _ = await owner.call(
        "POST", base + "/files-ops", {"op": "copy", "src": "etc-link/passwd", "dst": "y"}
    )
    assert status in (400, 403, 404)
    status, _ = await owner.call(
        "POST", base + "/files-ops", {"op": "move", "src": "ok.txt", "dst": "../x"}
    )
    assert status in (400, 403)
    assert (home_of(owner, other_id) / "secret.txt").read_bytes() == b"other project's secret"
    assert (home / "ok.txt").exists()


async def test_stranger_cannot_touch_files(owner: User, make_client: Any) -> None:
    project_id = await new_project(owner)
    await put(owner, project_id, "mine.txt", b"mine")
    client = await make_client()
    stranger = User(client, await sign_up(client))
    resp = await stranger.client.get(f"/api/v2/projects/{project_id}/files/mine.txt")
    assert resp.status == 404
    assert await put(stranger, project_id, "mine.txt", b"theirs") == 404
    assert (home_of(owner, project_id) / "mine.txt").read_bytes() == b"mine"


async def test_file_actions_go_to_the_project_log(owner: User) -> None:
    from sqlalchemy import select

    from cocalc_k8s.db.models import Event
    from cocalc_k8s.keys import ENGINE

    project_id = await new_project(owner)
    base = f"/api/v2/projects/{project_id}"
    await put(owner, project_id, "a.txt", b"new")  # created
    for text in (b"v1", b"v2", b"v3"):  # saved, recorded once per 10 minutes
        await put(owner, project_id, "a.txt", text)
    await owner.call("POST", base + "/files-ops", {"op": "mkdir", "path": "d"})
    await owner.call("POST", base + "/files-ops", {"op": "copy", "src": "a.txt", "dst": "d/b"})
    await owner.call("POST", base + "/files-ops", {"op": "move", "src": "a.txt", "dst": "c"})
    await owner.call("DELETE", base + "/files/c")
    async with owner.client.app[ENGINE].connect() as conn:
        rows = await conn.execute(
            select(Event.kind, Event.data, Event.account_id)
            .where(Event.project_id == project_id)
            .order_by(Event.id)
        )
        log = [(kind, data) for kind, data, account in rows if str(account) == owner.account_id]
    assert [e for e in log if e[0].startswith("file.")] == [
        ("file.created", {"path": "a.txt"}),
        ("file.saved", {"path": "a.txt"}),
        ("file.created", {"path": "d"}),
        ("file.copied", {"path": "a.txt", "to": "d/b"}),
        ("file.moved", {"path": "a.txt", "to": "c"}),
        ("file.deleted", {"path": "c"}),
    ]


async def test_pdf_for_the_viewer_is_sandboxed_and_framable_by_the_hub(owner: User) -> None:
    project_id = await new_project(owner)
    await put(owner, project_id, "p.pdf", b"%PDF-1.1 fake")
    url = f"/api/v2/projects/{project_id}/files/p.pdf"
    resp = await owner.client.get(url, params={"view": "1"})
    assert resp.headers["Content-Security-Policy"] == "sandbox; frame-ancestors 'self'"
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"
    resp = await owner.client.get(url)
    assert resp.headers["Content-Security-Policy"] == "sandbox"
    assert resp.headers["X-Frame-Options"] == "DENY"


SCRIPT_TYPES = ("javascript", "ecmascript", "wasm", "text/css", "json")


async def test_no_project_file_is_a_script_of_the_hub(owner: User) -> None:
    """`<script src=".../files/x.js">` on a hub page would pass `script-src 'self'`: no
    file may come back with a type a browser runs or applies (nosniff makes it stick)."""
    project_id = await new_project(owner)
    for name, expected in (
        ("x.js", "text/plain"),
        ("x.mjs", "text/plain"),
        ("x.cjs", "text/plain"),
        ("x.js.gz", "text/plain"),
        ("style.css", "text/plain"),
        ("data.json", "text/plain"),
        ("app.webmanifest", "text/plain"),
        ("m.wasm", "application/octet-stream"),
        ("noext", "application/octet-stream"),
        ("page.html", "text/plain"),
        ("red.png", "image/png"),
        ("p.pdf", "application/pdf"),
    ):
        await put(owner, project_id, name, b"window.pwned = 1")
        resp = await owner.client.get(f"/api/v2/projects/{project_id}/files/{name}")
        assert resp.status == 200, name
        assert resp.content_type == expected, name
        assert not any(kind in resp.headers["Content-Type"] for kind in SCRIPT_TYPES), name
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Security-Policy"] == "sandbox"


async def test_an_attachment_name_cannot_break_its_header(owner: User) -> None:
    project_id = await new_project(owner)
    name = 'a"b\\c é.html'
    await put(owner, project_id, quote(name), b"<p>hi")
    resp = await owner.client.get(f"/api/v2/projects/{project_id}/files/{quote(name)}")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"a_b_c _.html\"; filename*=UTF-8''a%22b%5Cc%20%C3%A9.html"
    )
