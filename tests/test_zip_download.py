"""A folder as a streamed zip: contents, confinement (symlinks left out), name, access."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sign_up
from tests.test_files_api import home_of
from tests.test_projects_api import User, new_project


@pytest.fixture
async def owner(make_client: Any) -> User:
    client = await make_client()
    return User(client, await sign_up(client))


def make_tree(home: Path, outside: Path) -> dict[str, bytes]:
    files = {
        "results/a.txt": b"alpha\n" * 1000,
        "results/deep/b.bin": os.urandom(300_000),
        "results/deep/deeper/c.png": b"\x89PNG fake",
        "results/ü nicode.md": "# grüß\n".encode(),
    }
    for name, data in files.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_bytes(data)
    (home / "results/empty").mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    os.symlink(outside, home / "results/out-dir")
    os.symlink(outside / "secret.txt", home / "results/deep/out-file")
    os.symlink("a.txt", home / "results/inner-link")
    return files


async def test_folder_zip_matches_the_tree(owner: User, tmp_path: Path) -> None:
    project_id = await new_project(owner)
    home = home_of(owner, project_id)
    home.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    files = make_tree(home, outside)
    resp = await owner.client.get(f"/api/v2/projects/{project_id}/zip?path=results")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/zip"
    assert 'filename="results.zip"' in resp.headers["Content-Disposition"]
    assert resp.headers["Content-Security-Policy"] == "sandbox"
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    assert archive.testzip() is None
    got = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    assert got == {name.removeprefix("results/"): data for name, data in files.items()}
    dirs = {i.filename for i in archive.infolist() if i.is_dir()}
    assert dirs == {"deep/", "deep/deeper/", "empty/"}
    assert b"not yours" not in await resp.read()
    compression = {i.filename: i.compress_type for i in archive.infolist()}
    assert compression["a.txt"] == zipfile.ZIP_DEFLATED
    assert compression["deep/deeper/c.png"] == zipfile.ZIP_STORED


async def test_home_zip_is_named_after_the_project(owner: User) -> None:
    project_id = await new_project(owner, "Lab notes")
    await owner.client.put(
        f"/api/v2/projects/{project_id}/files/x.txt", data=b"x", headers=owner.headers
    )
    resp = await owner.client.get(f"/api/v2/projects/{project_id}/zip")
    assert resp.status == 200
    assert 'filename="Lab notes.zip"' in resp.headers["Content-Disposition"]
    assert zipfile.ZipFile(io.BytesIO(await resp.read())).namelist() == ["x.txt"]


async def test_zip_refusals(owner: User, make_client: Any, tmp_path: Path) -> None:
    project_id = await new_project(owner)
    home = home_of(owner, project_id)
    home.mkdir(parents=True, exist_ok=True)
    os.symlink(tmp_path, home / "escape")
    (home / "f.txt").write_bytes(b"f")
    url = f"/api/v2/projects/{project_id}/zip"
    for path, status in (("escape", 403), ("../", 403), ("missing", 404), ("f.txt", 400)):
        resp = await owner.client.get(url, params={"path": path})
        assert resp.status == status, path
    stranger = await make_client()
    await sign_up(stranger)
    assert (await stranger.get(url)).status == 404
    anonymous = await make_client()
    assert (await anonymous.get(url)).status == 401


async def test_large_folder_streams(owner: User) -> None:
    """A 40 MB folder goes out in pieces, never as one body in memory."""
    project_id = await new_project(owner)
    home = home_of(owner, project_id)
    (home / "big").mkdir(parents=True)
    for i in range(4):
        (home / f"big/{i}.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    resp = await owner.client.get(f"/api/v2/projects/{project_id}/zip?path=big")
    pieces = 0
    buffer = io.BytesIO()
    async for piece in resp.content.iter_any():
        pieces += 1
        buffer.write(piece)
    assert resp.headers.get("Content-Length") is None  # streamed, chunked
    archive = zipfile.ZipFile(buffer)
    assert sorted(archive.namelist()) == [f"{i}.bin" for i in range(4)]
    assert archive.read("3.bin") == (home / "big/3.bin").read_bytes()
    assert pieces > 10
