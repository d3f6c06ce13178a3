"""ProjectFS without a server: confinement of every operation, atomic writes, trees."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cocalc_k8s.core.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from cocalc_k8s.core.projectfs import TEMP_PREFIX, ProjectFS, split_path


@pytest.fixture
def homes(tmp_path: Path) -> tuple[ProjectFS, Path, Path]:
    """A project home with symlinks inside and out, a sibling project, an outside file."""
    home, other = tmp_path / "projects" / "p1", tmp_path / "projects" / "p2"
    for d in (home / "sub" / "deep", other):
        d.mkdir(parents=True)
    (home / "a.txt").write_bytes(b"hello")
    (home / "sub" / "b.txt").write_bytes(b"bee")
    (other / "secret.txt").write_bytes(b"other project")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    (home / "to_sub").symlink_to("sub")
    (home / "abs_to_sub").symlink_to(home / "sub")
    (home / "to_outside").symlink_to(tmp_path / "outside.txt")
    (home / "to_tmp").symlink_to(tmp_path)
    (home / "to_other").symlink_to("../p2")
    (home / "sub" / "up_up").symlink_to("../../p2/secret.txt")
    (home / "loop").symlink_to("loop")
    return ProjectFS(home), home, other


ESCAPES = [
    "../p2/secret.txt",
    "sub/../../p2/secret.txt",
    "/etc/passwd",
    "to_outside",
    "to_tmp/outside.txt",
    "to_other/secret.txt",
    "sub/up_up",
]


def test_split_path_shapes() -> None:
    assert split_path("") == []
    assert split_path("./a//b/") == ["a", "b"]
    assert split_path("a/../b") == ["a", "..", "b"]
    with pytest.raises(BadRequest):
        split_path("a\x00b")
    with pytest.raises(BadRequest):
        split_path("a/" * 2100)
    with pytest.raises(BadRequest):
        split_path("x" * 256)
    with pytest.raises(Forbidden):
        split_path("/etc")


def test_resolve_follows_symlinks_inside(homes: tuple[ProjectFS, Path, Path]) -> None:
    fs, home, _ = homes
    assert fs.resolve("to_sub/b.txt") == home / "sub" / "b.txt"
    assert fs.resolve("abs_to_sub/b.txt") == home / "sub" / "b.txt"
    assert fs.resolve("sub/../a.txt") == home / "a.txt"
    assert fs.resolve("") == home
    assert fs.resolve("new.txt", must_exist=False) == home / "new.txt"
    with pytest.raises(NotFound):
        fs.resolve("missing/x.txt")
    with pytest.raises(BadRequest):
        fs.resolve("loop")


@pytest.mark.parametrize("path", ESCAPES)
def test_every_operation_refuses_escapes(homes: tuple[ProjectFS, Path, Path], path: str) -> None:
    fs, home, other = homes
    with pytest.raises(Forbidden):
        fs.resolve(path)
    with pytest.raises(Forbidden):
        fs.open_read(path)
    with pytest.raises(Forbidden):
        fs.write_atomic(path, [b"pwned"], 100)
    with pytest.raises(Forbidden):
        fs.write_atomic(f"{path}/x", [b"pwned"], 100)
    with pytest.raises(Forbidden):
        fs.listing(path)
    with pytest.raises(Forbidden):
        fs.mkdir(f"{path}/newdir")
    with pytest.raises(Forbidden):
        fs.copy("a.txt", f"{path}/copy")
    with pytest.raises(Forbidden):
        fs.move("a.txt", f"{path}/moved")
    if ".." in path.split("/") or path.startswith("/"):  # links themselves may be moved
        with pytest.raises(Forbidden):
            fs.delete(path)
        with pytest.raises(Forbidden):
            fs.copy(path, "copy")
        with pytest.raises(Forbidden):
            fs.move(path, "moved")
    assert (other / "secret.txt").read_bytes() == b"other project"
    assert (home.parent.parent / "outside.txt").read_bytes() == b"outside"
    assert (home / "a.txt").read_bytes() == b"hello"


def test_malformed_paths_are_bad_requests(homes: tuple[ProjectFS, Path, Path]) -> None:
    fs, _, _ = homes
    for op in (fs.listing, fs.open_read, fs.delete, fs.mkdir):
        with pytest.raises(BadRequest):
            op("a\x00b")
        with pytest.raises(BadRequest):
            op("y" * 300)


def test_listing_dirs_first_and_symlinks_not_followed_out(
    homes: tuple[ProjectFS, Path, Path],
) -> None:
    fs, _, _ = homes
    entries = {e["name"]: e for e in fs.listing("")}
    names = [e["name"] for e in fs.listing("")]
    assert names[:3] == ["abs_to_sub", "sub", "to_sub"]
    assert entries["to_sub"]["is_dir"] and entries["sub"]["is_dir"]
    assert entries["a.txt"] == {
        "name": "a.txt",
        "is_dir": False,
        "size": 5,
        "mtime": entries["a.txt"]["mtime"],
    }
    # Outside targets are shown as plain entries, never described from outside.
    assert not entries["to_tmp"]["is_dir"] and not entries["to_other"]["is_dir"]
    dirs = [e["is_dir"] for e in fs.listing("")]
    assert dirs == sorted(dirs, reverse=True)
    assert [e["name"] for e in fs.listing("to_sub")] == ["deep", "b.txt", "up_up"]
    with pytest.raises(BadRequest):
        fs.listing("a.txt")
    with pytest.raises(NotFound):
        fs.listing("nope")


def test_open_read_regular_files_only(homes: tuple[ProjectFS, Path, Path]) -> None:
    fs, home, _ = homes
    with fs.open_read("to_sub/b.txt") as f:
        assert f.read() == b"bee"
    with pytest.raises(BadRequest):
        fs.open_read("sub")
    with pytest.raises(BadRequest):
        fs.open_read("")
    os.mkfifo(home / "fifo")
    with pytest.raises(BadRequest):
        fs.open_read("fifo")  # must not hang
    with pytest.raises(NotFound):
        fs.open_read("nope.txt")


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_write_atomic_creates_parents_and_replaces(homes: tuple[ProjectFS, Path, Path]) -> None:
    fs, home, _ = homes
    assert fs.write_atomic("new/dir/f.txt", [b"one ", b"two"], 100) == 7
    assert (home / "new" / "dir" / "f.txt").read_bytes() == b"one two"
    (home / "a.txt").chmod(0o600)
    fs.write_atomic("a.txt", [b"replaced"], 100)
    assert (home / "a.txt").read_bytes() == b"replaced"
    assert (home / "a.txt").stat().st_mode & 0o777 == 0o600
    fs.write_atomic("to_sub/b.txt", [b"through a link inside"], 100)
    assert (home / "sub" / "b.txt").read_bytes() == b"through a link inside"
    assert _leftovers(home) == []


def test_write_over_limit_or_failing_leaves_old_file(homes: tuple[ProjectFS, Path, Path]) -> None:
    fs, home, _ = homes
    with pytest.raises(PayloadTooLarge):
        fs.write_atomic("a.txt", [b"x" * 60, b"y" * 60], 100)
    assert (home / "a.txt").read_bytes() == b"hello"

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        fs.write_atomic("a.txt", broken(), 100)
    assert (home / "a.txt").read_bytes() == b"hello"
    with pytest.raises(BadRequest):
        fs.write_atomic("sub", [b"x"], 100)
    with pytest.raises(BadRequest):
        fs.write_atomic("a.txt/x", [b"x"], 100)
    assert _leftovers(home) == []


def test_delete(homes: tuple[ProjectFS, Path, Path]) -> None:
    fs, home, other = homes
    with pytest.raises(Forbidden):
        fs.delete("")
    with pytest.raises(Forbidden):
        fs.delete("sub/..")
    fs.delete("to_other")  # the link, not the other project
    assert (other / "secret.txt").exists() and not (home / "to_other").is_symlink()
    fs.delete("a.txt")
    fs.delete("sub")
    assert not (home / "a.txt").exists() and not (home / "sub").exists()
    with pytest.raises(NotFound):
        fs.delete("a.txt")


def test_move_and_copy(homes: tuple[ProjectFS, Path, Path]) -> None:
    fs, home, _ = homes
    fs.copy("sub", "sub2")
    assert (home / "sub2" / "b.txt").read_bytes() == b"bee"
    assert (home / "sub2" / "deep").is_dir()
    assert os.readlink(home / "sub2" / "up_up") == "../../p2/secret.txt"  # copied as a link
    with pytest.raises(Forbidden):
        fs.open_read("sub2/up_up")
    fs.copy("a.txt", "x/y/a-copy.txt")
    assert (home / "x" / "y" / "a-copy.txt").read_bytes() == b"hello"
    with pytest.raises(Conflict):
        fs.copy("a.txt", "sub2/b.txt")
    with pytest.raises(BadRequest):
        fs.copy("sub", "sub/deep/again")
    fs.move("sub2", "moved/sub")
    assert (home / "moved" / "sub" / "b.txt").exists() and not (home / "sub2").exists()
    with pytest.raises(Conflict):
        fs.move("a.txt", "moved/sub/b.txt")
    with pytest.raises(BadRequest):
        fs.move("moved", "moved/sub/inside")
    with pytest.raises(NotFound):
        fs.move("nope", "x2")
    with pytest.raises(Forbidden):
        fs.move("", "x3")
    fs.move("to_outside", "link_moved")  # the link is moved as a link, still refused to read
    with pytest.raises(Forbidden):
        fs.open_read("link_moved")


def test_mkdir(homes: tuple[ProjectFS, Path, Path]) -> None:
    fs, home, _ = homes
    fs.mkdir("m/n/o")
    fs.mkdir("m/n/o")
    fs.mkdir("")
    assert (home / "m" / "n" / "o").is_dir()
    with pytest.raises(Conflict):
        fs.mkdir("a.txt")


def test_symlink_swapped_during_walk_is_not_followed(tmp_path: Path) -> None:
    """A directory replaced by a symlink to outside is refused, not followed."""
    home = tmp_path / "home"
    (home / "d").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "f").write_text("secret")
    fs = ProjectFS(home)
    assert fs.listing("d") == []
    (home / "d").rmdir()
    (home / "d").symlink_to(tmp_path / "secret")
    with pytest.raises(Forbidden):
        fs.open_read("d/f")


def test_disk_usage_and_missing_home(homes: tuple[ProjectFS, Path, Path], tmp_path: Path) -> None:
    fs, _, _ = homes
    fs.write_atomic("big.bin", [b"z" * 100_000], 200_000)
    assert fs.disk_usage() >= 100_000
    with pytest.raises(NotFound):
        ProjectFS(tmp_path / "absent").listing("")
