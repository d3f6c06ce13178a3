"""Chunked, resumable uploads through the hub: offsets, retries, quota, access, expiry."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cocalc_k8s.db.models import Event
from cocalc_k8s.keys import ENGINE, FILES, SETTINGS
from tests.conftest import sign_up
from tests.test_files_api import home_of
from tests.test_projects_api import User, new_project

MiB = 1024 * 1024


@pytest.fixture
async def owner(make_client: Any) -> User:
    client = await make_client(max_file_mb=100_000)  # so the disk quota is the limit
    return User(client, await sign_up(client))


def base(project_id: str) -> str:
    return f"/api/v2/projects/{project_id}/uploads"


async def start(user: User, project_id: str, path: str, size: int) -> str:
    status, body = await user.call("POST", base(project_id), {"path": path, "size": size})
    assert status == 201, body
    assert body["offset"] == 0 and not body["complete"]
    return str(body["upload_id"])


async def send(
    user: User, project_id: str, upload_id: str, offset: int, data: Any, **headers: str
) -> tuple[int, Any]:
    resp = await user.client.put(
        f"{base(project_id)}/{upload_id}",
        data=data,
        headers={**user.headers, "Upload-Offset": str(offset), **headers},
    )
    return resp.status, await resp.json()


async def test_chunks_in_order_complete_atomically(owner: User) -> None:
    project_id = await new_project(owner)
    data = os.urandom(3 * MiB + 123)
    upload_id = await start(owner, project_id, "in/deep/data.bin", len(data))
    home = home_of(owner, project_id)
    for offset in range(0, len(data), MiB):
        status, body = await send(owner, project_id, upload_id, offset, data[offset : offset + MiB])
        assert status == 200, body
        done = offset + MiB >= len(data)
        assert body["complete"] is done
        assert (home / "in/deep/data.bin").exists() is done  # nothing visible before the end
    assert (home / "in/deep/data.bin").read_bytes() == data
    resp = await owner.client.head(f"{base(project_id)}/{upload_id}")
    assert resp.headers["Upload-Offset"] == str(len(data))
    assert not list(home.rglob(".cocalc-upload-*"))
    async with owner.client.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(Event.kind, Event.data))).all()
    assert ("file.uploaded", {"path": "in/deep/data.bin"}) in [tuple(r) for r in rows]


async def test_retry_and_wrong_offset(owner: User) -> None:
    project_id = await new_project(owner)
    data = os.urandom(300_000)
    upload_id = await start(owner, project_id, "r.bin", len(data))
    assert (await send(owner, project_id, upload_id, 0, data[:100_000]))[0] == 200
    # The same chunk again (its answer was lost): harmless, the offset stays.
    status, body = await send(owner, project_id, upload_id, 0, data[:100_000])
    assert status == 200 and body["offset"] == 100_000
    # A chunk past the committed offset: 409 with the offset to continue from.
    status, body = await send(owner, project_id, upload_id, 200_000, data[200_000:])
    assert status == 409 and body["offset"] == 100_000 and "100000" in body["error"]
    # Overlapping the committed part: only the new bytes are appended.
    status, body = await send(
        owner,
        project_id,
        upload_id,
        50_000,
        data[50_000:],
        **{"Content-Range": f"bytes 50000-{len(data) - 1}/{len(data)}"},
    )
    assert status == 200 and body["complete"], body
    assert (home_of(owner, project_id) / "r.bin").read_bytes() == data
    # A retried last chunk after completion still answers "complete".
    status, body = await send(owner, project_id, upload_id, 200_000, data[200_000:])
    assert status == 200 and body["complete"]


async def test_interrupted_then_resumed(owner: User) -> None:
    """The connection breaks in the middle of a chunk: what arrived is kept, the client
    asks for the offset and goes on from there."""
    project_id = await new_project(owner)
    data = os.urandom(4 * MiB)
    upload_id = await start(owner, project_id, "big.bin", len(data))

    class Broken(Exception):
        pass

    async def breaks_after(limit: int) -> Any:
        yield data[:limit]
        raise Broken

    with pytest.raises(Exception):  # noqa: B017 - the client's error for a broken body
        await owner.client.put(
            f"{base(project_id)}/{upload_id}",
            data=breaks_after(3 * MiB),
            headers={**owner.headers, "Upload-Offset": "0", "Content-Length": str(len(data))},
        )
    uploads = owner.client.app[FILES].uploads
    deadline = time.monotonic() + 10
    while True:  # the hub notices the broken body on its own schedule
        resp = await owner.client.head(f"{base(project_id)}/{upload_id}")
        offset = int(resp.headers["Upload-Offset"])
        if offset == 3 * MiB or time.monotonic() > deadline:
            break
        async with uploads._lock(upload_id):  # wait for the writer to let go
            pass
    assert offset == 3 * MiB
    status, body = await send(owner, project_id, upload_id, offset, data[offset:])
    assert status == 200 and body["complete"]
    assert (home_of(owner, project_id) / "big.bin").read_bytes() == data


async def test_bad_input(owner: User) -> None:
    project_id = await new_project(owner)
    url = base(project_id)
    for body, word in (
        ({"path": "", "size": 1}, "path"),
        ({"path": "a", "size": -1}, "size"),
        ({"path": "a", "size": "10"}, "size"),
        ({"path": "../escape", "size": 1}, "outside"),
        ({"path": "/etc/passwd", "size": 1}, "relative"),
    ):
        status, answer = await owner.call("POST", url, body)
        assert status in (400, 403), body
        assert word in answer["error"], answer
    await owner.call(
        "POST", f"/api/v2/projects/{project_id}/files-ops", {"op": "mkdir", "path": "d"}
    )
    status, answer = await owner.call("POST", url, {"path": "d", "size": 1})
    assert status == 400 and "directory" in answer["error"]
    upload_id = await start(owner, project_id, "x.bin", 10)
    resp = await owner.client.put(f"{url}/{upload_id}", data=b"12", headers=owner.headers)
    assert resp.status == 400 and "Upload-Offset" in (await resp.json())["error"]
    status, answer = await send(owner, project_id, upload_id, 0, b"x" * 11)
    assert status == 400 and "past" in answer["error"]
    status, answer = await owner.call("GET", f"{url}/not-an-id")
    assert status == 404


async def test_quota_is_413_with_a_message(owner: User, make_client: Any) -> None:
    project_id = await new_project(owner)
    # The default disk quota is 5000 MB; unfinished uploads reserve their full size.
    status, body = await owner.call("POST", base(project_id), {"path": "a", "size": 6000 * MiB})
    assert status == 413 and "disk quota" in body["error"]
    await start(owner, project_id, "half.bin", 3000 * MiB)
    status, body = await owner.call("POST", base(project_id), {"path": "b", "size": 2500 * MiB})
    assert status == 413 and "unfinished uploads" in body["error"], body
    status, body = await owner.call("GET", base(project_id))
    assert [u["path"] for u in body["uploads"]] == ["half.bin"]


async def test_symlink_out_of_the_home_is_refused(owner: User, tmp_path: Path) -> None:
    project_id = await new_project(owner)
    outside = tmp_path / "outside"
    outside.mkdir()
    home = home_of(owner, project_id)
    upload_id = await start(owner, project_id, "link/f.txt", 4)
    os.symlink(outside, home / "link")  # swapped in while the upload runs
    status, body = await send(owner, project_id, upload_id, 0, b"evil")
    assert status == 403, body
    assert list(outside.iterdir()) == []
    status, body = await owner.call("POST", base(project_id), {"path": "link/g.txt", "size": 1})
    assert status == 403


async def test_who_may_upload(owner: User, make_client: Any) -> None:
    project_id = await new_project(owner)
    upload_id = await start(owner, project_id, "mine.bin", 4)
    client = await make_client()
    stranger = User(client, await sign_up(client))
    status, _ = await stranger.call("POST", base(project_id), {"path": "x", "size": 1})
    assert status == 404
    assert (await send(stranger, project_id, upload_id, 0, b"evil"))[0] == 404
    assert (await stranger.call("DELETE", f"{base(project_id)}/{upload_id}"))[0] == 404
    anonymous = await make_client()
    resp = await anonymous.get(f"{base(project_id)}/{upload_id}")
    assert resp.status == 401
    # A collaborator does not see another account's upload.
    status, _ = await owner.call(
        "POST", f"/api/v2/projects/{project_id}/collaborators", {"email": stranger.info["email"]}
    )
    assert status in (200, 201, 204)
    assert (await stranger.call("GET", f"{base(project_id)}/{upload_id}"))[0] == 404
    assert (await send(owner, project_id, upload_id, 0, b"mine"))[1]["complete"]


async def test_cancel_and_expiry(owner: User) -> None:
    project_id = await new_project(owner)
    url = base(project_id)
    upload_id = await start(owner, project_id, "c.bin", 10)
    await send(owner, project_id, upload_id, 0, b"12345")
    assert (await owner.call("DELETE", f"{url}/{upload_id}"))[0] == 204
    assert (await owner.call("GET", f"{url}/{upload_id}"))[0] == 404
    uploads = owner.client.app[FILES].uploads
    old_id = await start(owner, project_id, "old.bin", 10)
    assert await uploads.sweep(now=time.time() + 25 * 3600, force=True) == 1
    assert (await owner.call("GET", f"{url}/{old_id}"))[0] == 404
    assert list((uploads.root / project_id).iterdir()) == []


async def test_a_starting_hub_sweeps_abandoned_uploads(owner: User, make_client: Any) -> None:
    project_id = await new_project(owner)
    upload_id = await start(owner, project_id, "abandoned.bin", 10)
    staged = owner.client.app[FILES].uploads.root / project_id
    day_ago = time.time() - 25 * 3600
    for path in staged.iterdir():
        os.utime(path, (day_ago, day_ago))
    # Nobody uploads again: a hub starting on the same data directory removes it anyway.
    await make_client(data_dir=owner.client.app[SETTINGS].data_dir)
    deadline = time.monotonic() + 10
    while any(staged.iterdir()):
        assert time.monotonic() < deadline, f"upload {upload_id} was not swept"
        await asyncio.sleep(0.05)


def digest(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


async def test_a_chunk_with_a_digest_is_kept_whole_or_not_at_all(owner: User) -> None:
    project_id = await new_project(owner)
    data = os.urandom(3 * MiB)
    upload_id = await start(owner, project_id, "checked.bin", len(data))
    first = data[: 2 * MiB]
    status, body = await send(
        owner, project_id, upload_id, 0, first, **{"Content-Digest": digest(first)}
    )
    assert status == 200 and body["offset"] == 2 * MiB, body
    # Damaged on the way: refused, and nothing of it is kept (the offset stays).
    rest = data[2 * MiB :]
    damaged = rest[:-1] + bytes([rest[-1] ^ 1])
    status, body = await send(
        owner, project_id, upload_id, 2 * MiB, damaged, **{"Content-Digest": digest(rest)}
    )
    assert status == 422 and "send it again" in body["error"], body
    resp = await owner.client.head(f"{base(project_id)}/{upload_id}")
    assert resp.headers["Upload-Offset"] == str(2 * MiB)
    # A retry that overlaps what is stored is checked over the whole chunk as sent.
    overlap = data[MiB:]
    status, body = await send(
        owner,
        project_id,
        upload_id,
        MiB,
        overlap,
        **{"Content-Digest": "md5=:eA==:, " + digest(overlap)},
    )
    assert status == 200 and body["complete"], body
    assert (home_of(owner, project_id) / "checked.bin").read_bytes() == data
    other = await start(owner, project_id, "bad-header.bin", 3)
    status, body = await send(
        owner, project_id, other, 0, b"abc", **{"Content-Digest": "sha-256=:bm90IDMy:"}
    )
    assert status == 400 and "32 bytes" in body["error"]


async def test_empty_file(owner: User) -> None:
    project_id = await new_project(owner)
    upload_id = await start(owner, project_id, "empty.txt", 0)
    status, body = await send(owner, project_id, upload_id, 0, b"")
    assert status == 200 and body["complete"]
    assert (home_of(owner, project_id) / "empty.txt").read_bytes() == b""
