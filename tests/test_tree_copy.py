"""The cross-project copy engine on real directories (no servers)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from cocalc_k8s.core.errors import Conflict, Forbidden, NotFound, PayloadTooLarge
from cocalc_k8s.core.projectfs import ProjectFS
from cocalc_k8s.core.tree_copy import (
    STAGING_PREFIX,
    Cancelled,
    Progress,
    copy_between,
    link_stays_inside,
    remove_staging,
)


@pytest.fixture
def homes(tmp_path: Path) -> tuple[ProjectFS, ProjectFS]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    return ProjectFS(a), ProjectFS(b)


def run(src: ProjectFS, s: str, dst: ProjectFS, d: str, **kw: object) -> Progress:
    progress = kw.pop("progress", None) or Progress()
    assert isinstance(progress, Progress)
    options: dict[str, object] = {"copy_id": "c1", "overwrite": False, "max_bytes": 1 << 40}
    options.update(kw)
    copy_between(src, s, dst, d, progress=progress, **options)  # type: ignore[arg-type]
    return progress


def digest(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def no_staging(home: Path) -> bool:
    return not any(p.name.startswith(STAGING_PREFIX) for p in home.rglob("*"))


def test_link_stays_inside() -> None:
    assert link_stays_inside("x/link", "../y")
    assert link_stays_inside("link", "sub/file")
    assert not link_stays_inside("link", "../elsewhere")
    assert not link_stays_inside("x/link", "../../up")
    assert not link_stays_inside("link", "/etc/passwd")
    assert not link_stays_inside("link", "")


def test_a_file(homes: tuple[ProjectFS, ProjectFS]) -> None:
    a, b = homes
    (a.home / "notes.txt").write_bytes(b"hello")
    (a.home / "notes.txt").chmod(0o4755)  # setuid is never copied
    progress = run(a, "notes.txt", b, "in/copied.txt")
    copied = b.home / "in" / "copied.txt"
    assert copied.read_bytes() == b"hello"
    assert stat.S_IMODE(copied.stat().st_mode) == 0o755
    assert (progress.files_done, progress.bytes_done) == (1, 5)
    assert (progress.files_total, progress.bytes_total) == (1, 5)


def test_a_folder_of_a_thousand_files(homes: tuple[ProjectFS, ProjectFS]) -> None:
    a, b = homes
    for i in range(1000):
        sub = a.home / "work" / f"d{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_bytes(os.urandom(i % 97))
    progress = run(a, "work", b, "work")
    assert digest(b.home / "work") == digest(a.home / "work")
    assert progress.files_done == progress.files_total == 1000
    assert no_staging(b.home)


def test_links_hard_links_and_special_files(homes: tuple[ProjectFS, ProjectFS]) -> None:
    a, b = homes
    src = a.home / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "data").write_text("x")
    (src / "inside").symlink_to("sub/data")
    (src / "sub" / "up").symlink_to("../sub/data")
    (src / "escape").symlink_to("../../b")  # another project's home
    (src / "absolute").symlink_to("/etc/passwd")
    os.link(src / "sub" / "data", src / "hard")
    os.mkfifo(src / "fifo")
    progress = run(a, "tree", b, "tree")
    out = b.home / "tree"
    assert os.readlink(out / "inside") == "sub/data"
    assert os.readlink(out / "sub" / "up") == "../sub/data"
    assert not (out / "escape").exists() and not (out / "escape").is_symlink()
    assert not (out / "absolute").is_symlink()
    assert not (out / "fifo").exists()
    assert (out / "hard").read_text() == "x"
    assert os.stat(out / "hard").st_ino != os.stat(out / "sub" / "data").st_ino
    reasons = {s["path"]: s["reason"] for s in progress.skipped}
    assert set(reasons) == {"absolute", "escape", "fifo"}
    assert all("/etc" not in r and "../" not in r for r in reasons.values())  # no targets


def test_a_source_through_a_link_out_of_the_home(
    homes: tuple[ProjectFS, ProjectFS], tmp_path: Path
) -> None:
    a, b = homes
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_text("k")
    (a.home / "door").symlink_to(tmp_path / "secret")
    with pytest.raises(Forbidden):
        run(a, "door/key", b, "key")
    with pytest.raises(Forbidden):
        run(a, "../b", b, "x")
    with pytest.raises(NotFound):
        run(a, "missing", b, "x")
    assert list(b.home.iterdir()) == []


def test_existing_destination(homes: tuple[ProjectFS, ProjectFS]) -> None:
    a, b = homes
    (a.home / "f").write_text("new")
    (b.home / "f").write_text("old")
    with pytest.raises(Conflict):
        run(a, "f", b, "f")
    assert (b.home / "f").read_text() == "old"
    run(a, "f", b, "f", overwrite=True)
    assert (b.home / "f").read_text() == "new"
    (b.home / "d").mkdir()
    with pytest.raises(Conflict):
        run(a, "f", b, "d", overwrite=True)  # a file onto a folder: never


def test_overwrite_merges_a_folder(homes: tuple[ProjectFS, ProjectFS]) -> None:
    a, b = homes
    (a.home / "hw" / "q").mkdir(parents=True)
    (a.home / "hw" / "q" / "1.txt").write_text("new 1")
    (a.home / "hw" / "2.txt").write_text("new 2")
    (b.home / "hw" / "q").mkdir(parents=True)
    (b.home / "hw" / "q" / "1.txt").write_text("old 1")
    (b.home / "hw" / "mine.txt").write_text("keep")
    with pytest.raises(Conflict):
        run(a, "hw", b, "hw")
    run(a, "hw", b, "hw", overwrite=True)
    assert (b.home / "hw" / "q" / "1.txt").read_text() == "new 1"
    assert (b.home / "hw" / "2.txt").read_text() == "new 2"
    assert (b.home / "hw" / "mine.txt").read_text() == "keep"
    assert no_staging(b.home)


def test_limits_leave_nothing_behind(homes: tuple[ProjectFS, ProjectFS]) -> None:
    a, b = homes
    (a.home / "big").mkdir()
    for i in range(3):
        (a.home / "big" / str(i)).write_bytes(b"x" * 1000)
    with pytest.raises(PayloadTooLarge, match="limit"):
        run(a, "big", b, "big", max_bytes=2999)
    with pytest.raises(PayloadTooLarge, match="quota"):
        run(a, "big", b, "big", room=lambda: 2000)
    assert list(b.home.iterdir()) == []
    run(a, "big", b, "big", room=lambda: 3000)
    assert len(list((b.home / "big").iterdir())) == 3


def test_cancel_leaves_nothing_behind(homes: tuple[ProjectFS, ProjectFS]) -> None:
    a, b = homes
    (a.home / "many").mkdir()
    for i in range(50):
        (a.home / "many" / str(i)).write_bytes(b"y" * 10)
    progress = Progress()
    seen = 0

    def room() -> None:
        nonlocal seen
        seen += 1
        progress.cancel.set()  # cancelled once planning is done, before anything is built

    with pytest.raises(Cancelled):
        run(a, "many", b, "many", progress=progress, room=room)
    assert seen == 1
    assert list(b.home.iterdir()) == []


def test_staging_of_an_interrupted_copy_is_removed(homes: tuple[ProjectFS, ProjectFS]) -> None:
    _, b = homes
    (b.home / "dest").mkdir()
    (b.home / "dest" / (STAGING_PREFIX + "c9")).mkdir()
    (b.home / "dest" / (STAGING_PREFIX + "c9") / "half").write_text("h")
    remove_staging(b, "dest/result", "c9")
    assert list((b.home / "dest").iterdir()) == []
    remove_staging(b, "nowhere/result", "c9")  # nothing there: fine


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another uid needs root")
def test_copies_belong_to_the_destination_user(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "d").mkdir(parents=True)
    (a / "d" / "f").write_text("z")
    (a / "d" / "l").symlink_to("f")
    b.mkdir()
    run(ProjectFS(a), "d", ProjectFS(b, owner=(2001, 2001)), "d")
    for path in (b / "d", b / "d" / "f", b / "d" / "l"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (2001, 2001)
