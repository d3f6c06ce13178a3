"""Copies between projects through the API: real hub, real database, real files."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from cocalc_k8s.core.tree_copy import STAGING_PREFIX, staging_name
from cocalc_k8s.keys import COPIES, SETTINGS
from tests.conftest import sign_up
from tests.share.helpers import publish
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def make_user(make_client: Any) -> Any:
    async def make() -> User:
        client = await make_client()
        return User(client, await sign_up(client))

    return make


def home(user: User, project_id: str) -> Path:
    path = user.client.app[SETTINGS].data_dir / "projects" / project_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


async def copy_and_wait(user: User, body: dict[str, Any], ended: str = "done") -> dict[str, Any]:
    status, created = await user.call("POST", "/api/v2/copies", body)
    assert status == 202, created
    return await wait_copy(user, str(created["copy_id"]), ended)


async def wait_copy(user: User, copy_id: str, ended: str = "done") -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            status, copy = await user.call("GET", f"/api/v2/copies/{copy_id}")
            assert status == 200, copy
            if copy["state"] in ("done", "failed"):
                assert copy["state"] == ended, copy
                return dict(copy)
            await asyncio.sleep(0.05)


async def add_collaborator(owner: User, project_id: str, other: User) -> None:
    status, body = await owner.call(
        "POST", f"/api/v2/projects/{project_id}/collaborators", {"email": other.info["email"]}
    )
    assert status == 201, body


async def test_a_file_and_a_folder_of_a_thousand_files(make_user: Any) -> None:
    teacher = await make_user()
    src, dst = await new_project(teacher, "Course"), await new_project(teacher, "Student")
    (home(teacher, src) / "hw.txt").write_text("question 1")
    folder = home(teacher, src) / "data"
    for i in range(1000):
        (folder / f"part{i % 7}").mkdir(parents=True, exist_ok=True)
        (folder / f"part{i % 7}" / f"f{i}.csv").write_bytes(os.urandom(i % 300))
    copy = await copy_and_wait(
        teacher,
        {
            "src_project_id": src,
            "src_path": "hw.txt",
            "dst_project_id": dst,
            "dst_path": "a/hw.txt",
        },
    )
    assert (home(teacher, dst) / "a" / "hw.txt").read_text() == "question 1"
    assert (copy["files_done"], copy["bytes_done"]) == (1, 10)
    copy = await copy_and_wait(
        teacher,
        {"src_project_id": src, "src_path": "data", "dst_project_id": dst, "dst_path": "data"},
    )
    assert hashes(home(teacher, dst) / "data") == hashes(folder)
    assert copy["files_done"] == copy["files_total"] == 1000
    # The listing through the files API shows the copy, and the log says who copied what.
    status, listing = await teacher.call("GET", f"/api/v2/projects/{dst}/listing?path=data")
    assert status == 200 and len(listing["entries"]) == 7
    _, log = await teacher.call("GET", f"/api/v2/projects/{dst}/events")
    kinds = [e["kind"] for e in log["events"]]
    assert kinds.count("copy.in") == 2
    _, log = await teacher.call("GET", f"/api/v2/projects/{src}/events")
    assert [e["kind"] for e in log["events"]].count("copy.out") == 2
    _, recent = await teacher.call("GET", f"/api/v2/copies?project_id={dst}")
    assert {c["dst_path"] for c in recent["copies"]} == {"a/hw.txt", "data"}


async def test_strangers_get_404(make_user: Any) -> None:
    alice, mallory = await make_user(), await make_user()
    src, dst = await new_project(alice), await new_project(alice)
    theirs = await new_project(mallory)
    (home(alice, src) / "secret").write_text("s")
    body = {"src_project_id": src, "src_path": "secret", "dst_project_id": theirs, "dst_path": "s"}
    status, error = await mallory.call("POST", "/api/v2/copies", body)
    assert status == 404 and "no such project" in error["error"]
    status, _ = await alice.call("POST", "/api/v2/copies", body)  # not a member of theirs
    assert status == 404
    copy = await copy_and_wait(alice, {**body, "dst_project_id": dst})
    assert (await mallory.call("GET", f"/api/v2/copies/{copy['copy_id']}"))[0] == 404
    assert (await mallory.call("DELETE", f"/api/v2/copies/{copy['copy_id']}"))[0] == 404
    assert (await mallory.call("GET", f"/api/v2/copies?project_id={src}"))[0] == 404
    assert (await mallory.call("GET", f"/api/v2/copies/{uuid.uuid4()}"))[0] == 404
    assert (await mallory.call("GET", "/api/v2/copies/not-an-id"))[0] == 404
    async with aiohttp.ClientSession() as anonymous:  # no cookies at all
        url = alice.client.make_url(f"/api/v2/copies/{copy['copy_id']}")
        async with anonymous.get(url) as resp:
            assert resp.status == 401


async def test_collaborators_of_both_may_copy_and_see(make_user: Any) -> None:
    alice, bob = await make_user(), await make_user()
    src, dst = await new_project(alice), await new_project(bob)
    (home(alice, src) / "f").write_text("x")
    await add_collaborator(alice, src, bob)
    copy = await copy_and_wait(
        bob, {"src_project_id": src, "src_path": "f", "dst_project_id": dst, "dst_path": "f"}
    )
    status, seen = await alice.call("GET", f"/api/v2/copies/{copy['copy_id']}")
    assert status == 200 and seen["state"] == "done"  # a collaborator of the source


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"src_project_id": "nope"}, "src_project_id"),
        ({"dst_project_id": 5}, "dst_project_id"),
        ({"src_path": ""}, "src_path"),
        ({"dst_path": "/etc/x"}, "relative"),
        ({"src_path": "a\x00b"}, "NUL"),
        ({"overwrite": "yes"}, "overwrite"),
        ({"dst_project_ids": []}, "dst_project_ids"),
        ({"public_path_id": 5, "src_project_id": None}, "not both"),
    ],
)
async def test_bad_requests(make_user: Any, change: dict[str, Any], fragment: str) -> None:
    alice = await make_user()
    src, dst = await new_project(alice), await new_project(alice)
    body = {"src_project_id": src, "src_path": "f", "dst_project_id": dst, "dst_path": "f"}
    status, error = await alice.call("POST", "/api/v2/copies", {**body, **change})
    assert status in (400, 403), error
    assert fragment in error["error"]


async def test_failures_leave_nothing(make_user: Any, database_url: str) -> None:
    alice = await make_user()
    src, dst = await new_project(alice), await new_project(alice)
    (home(alice, src) / "big").write_bytes(b"z" * (11 * 1024**2))
    (home(alice, dst) / "taken").write_text("mine")
    (home(alice, src) / "taken").write_text("theirs")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE projects SET quota = %s WHERE project_id = %s", ('{"disk_mb": 10}', dst)
        )
    body = {"src_project_id": src, "dst_project_id": dst}
    copy = await copy_and_wait(alice, {**body, "src_path": "big", "dst_path": "big"}, "failed")
    assert "quota" in copy["error"]
    copy = await copy_and_wait(alice, {**body, "src_path": "missing", "dst_path": "m"}, "failed")
    assert "no such file" in copy["error"]
    copy = await copy_and_wait(alice, {**body, "src_path": "taken", "dst_path": "taken"}, "failed")
    assert "already exists" in copy["error"]
    assert sorted(p.name for p in home(alice, dst).iterdir()) == ["taken"]
    assert (home(alice, dst) / "taken").read_text() == "mine"
    await copy_and_wait(
        alice, {**body, "src_path": "taken", "dst_path": "taken", "overwrite": True}
    )
    assert (home(alice, dst) / "taken").read_text() == "theirs"


async def test_links_to_other_projects_are_not_followed(make_user: Any) -> None:
    alice, bob = await make_user(), await make_user()
    src, dst = await new_project(alice), await new_project(alice)
    victim = await new_project(bob)
    (home(bob, victim) / "diary.txt").write_text("private")
    work = home(alice, src) / "work"
    work.mkdir()
    (work / "ok.txt").write_text("ok")
    (work / "peek").symlink_to(home(bob, victim))
    (work / "rel").symlink_to(f"../../{victim}/diary.txt")
    copy = await copy_and_wait(
        alice, {"src_project_id": src, "src_path": "work", "dst_project_id": dst, "dst_path": "w"}
    )
    out = home(alice, dst) / "w"
    assert sorted(p.name for p in out.iterdir()) == ["ok.txt"]
    assert {s["path"] for s in copy["skipped"]} == {"peek", "rel"}
    assert victim not in str(copy["skipped"])  # where the links pointed is not revealed
    body = {"src_project_id": src, "src_path": "work/peek", "dst_project_id": dst, "dst_path": "x"}
    copy = await copy_and_wait(alice, body, "failed")
    assert "outside the project" in copy["error"]


async def test_batch_to_forty_projects(make_user: Any) -> None:
    teacher = await make_user()
    src = await new_project(teacher, "Course")
    (home(teacher, src) / "assignment").mkdir()
    (home(teacher, src) / "assignment" / "task.md").write_text("# Task 1")
    students = [await new_project(teacher, f"Student {i}") for i in range(40)]
    status, body = await teacher.call(
        "POST",
        "/api/v2/copies",
        {
            "src_project_id": src,
            "src_path": "assignment",
            "dst_project_ids": students,
            "dst_path": "assignment",
        },
    )
    assert status == 202 and len(body["copy_ids"]) == 40
    for copy_id in body["copy_ids"]:
        await wait_copy(teacher, str(copy_id))
    for student in students:
        assert (home(teacher, student) / "assignment" / "task.md").read_text() == "# Task 1"


async def test_cancel(make_user: Any, database_url: str) -> None:
    alice = await make_user()
    src, dst = await new_project(alice), await new_project(alice)
    (home(alice, src) / "f").write_text("x")
    service = alice.client.app[COPIES]
    await service.close()  # no workers: the copy stays queued
    status, created = await alice.call(
        "POST",
        "/api/v2/copies",
        {"src_project_id": src, "src_path": "f", "dst_project_id": dst, "dst_path": "f"},
    )
    copy_id = created["copy_id"]
    status, copy = await alice.call("DELETE", f"/api/v2/copies/{copy_id}")
    assert status == 200 and (copy["state"], copy["error"]) == ("failed", "cancelled")
    status, error = await alice.call("DELETE", f"/api/v2/copies/{copy_id}")
    assert status == 409 and "ended" in error["error"]
    assert not (home(alice, dst) / "f").exists()


async def test_a_copy_interrupted_by_a_dead_hub_is_resumed(
    make_user: Any, database_url: str
) -> None:
    """What a hub killed mid-copy leaves: a row 'copying' with an old heartbeat, and a half
    staging tree. Another hub (or this one restarted) queues it again, removes the staging
    tree and copies it whole; nothing half-done is ever visible."""
    alice = await make_user()
    src, dst = await new_project(alice), await new_project(alice)
    (home(alice, src) / "d").mkdir()
    for i in range(20):
        (home(alice, src) / "d" / str(i)).write_text(str(i))
    copy_id = uuid.uuid4()
    half = home(alice, dst) / staging_name(str(copy_id))
    half.mkdir()
    (half / "0").write_text("half")
    with psycopg.connect(database_url, autocommit=True) as conn:
        account = alice.account_id
        conn.execute(
            "INSERT INTO copy_paths (copy_id, batch_id, account_id, src_project_id, src_path,"
            " dst_project_id, dst_path, state, attempts, heartbeat)"
            " VALUES (%s, %s, %s, %s, 'd', %s, 'd', 'copying', 1, now() - interval '1 hour')",
            (copy_id, copy_id, account, src, dst),
        )
    alice.client.app[COPIES].notified()
    copy = await wait_copy(alice, str(copy_id))
    assert copy["files_done"] == 20
    assert sorted(p.name for p in home(alice, dst).iterdir()) == ["d"]
    assert (home(alice, dst) / "d" / "0").read_text() == "0"
    assert not any(p.name.startswith(STAGING_PREFIX) for p in home(alice, dst).rglob("*"))


async def test_copy_to_my_project_from_a_published_item(make_user: Any, database_url: str) -> None:
    """A reader copies a published folder (or a file inside it) into a project of theirs:
    only what the share site shows arrives (no dotfiles, no links out of the item)."""
    author, reader = await make_user(), await make_user()
    course, mine = await new_project(author), await new_project(reader)
    pub = home(author, course) / "pub"
    (pub / "lesson").mkdir(parents=True)
    (pub / "lesson" / "notes.md").write_text("# Notes")
    (pub / ".env").write_text("TOKEN=secret")
    (pub / "up").symlink_to("../private.txt")
    (home(author, course) / "private.txt").write_text("private")
    item = await publish(author, course, path="pub", name="course", visibility="unlisted")
    body = {"public_path_id": item["id"], "dst_project_id": mine}
    copy = await copy_and_wait(reader, {**body, "dst_path": "course"})
    out = home(reader, mine) / "course"
    assert sorted(p.name for p in out.iterdir()) == ["lesson"]
    assert (out / "lesson" / "notes.md").read_text() == "# Notes"
    assert {s["path"] for s in copy["skipped"]} == {".env", "up"}
    await copy_and_wait(reader, {**body, "src_path": "lesson/notes.md", "dst_path": "n.md"})
    assert (home(reader, mine) / "n.md").read_text() == "# Notes"
    for inner in ("../private.txt", "up", ".env", "/etc/passwd", "lesson/../../private.txt"):
        status, error = await reader.call(
            "POST", "/api/v2/copies", {**body, "src_path": inner, "dst_path": "x"}
        )
        if status == 202:  # a path that only the copy can find out about fails there
            copy = await wait_copy(reader, str(error["copy_id"]), "failed")
        else:
            assert status == 404, (inner, error)
    assert not (home(reader, mine) / "x").exists()
    # Into a project the reader does not belong to: 404; a wrong id: 404.
    status, _ = await reader.call(
        "POST", "/api/v2/copies", {**body, "dst_project_id": course, "dst_path": "y"}
    )
    assert status == 404
    status, _ = await reader.call(
        "POST", "/api/v2/copies", {**body, "public_path_id": "nope", "dst_path": "y"}
    )
    assert status == 404
    # Disabled: strangers get 404, even with the id.
    status, _ = await author.call(
        "PATCH", f"/api/v2/projects/{course}/public-paths/{item['id']}", {"visibility": "disabled"}
    )
    assert status == 200
    status, _ = await reader.call("POST", "/api/v2/copies", {**body, "dst_path": "z"})
    assert status == 404
