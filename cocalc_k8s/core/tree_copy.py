"""Copy a file or a folder from one project's home into another's (blocking; stdlib only).

The hub runs this in a worker thread for `services.copies`. Both ends are `ProjectFS`
locations, so neither path can lead out of its home; below them everything is walked by
directory descriptors with ``O_NOFOLLOW`` (see `cocalc_k8s.core.projectfs`).

What is copied, and what is not:

* regular files, as ordinary files (several hard links to one file become separate
  copies), with their mode bits (``0o777``: no setuid, setgid or sticky bits);
* folders, with their mode (always readable, writable and searchable by their owner);
* symbolic links only when they point inside the copied tree (a relative target that
  stays within it); every other link is skipped and reported, so that a copy never
  reveals where a link pointed (another project, ``/etc``);
* FIFOs, sockets and devices are skipped and reported.

Nothing half-done is ever visible at the destination: the copy is built under a hidden
staging name (``.cocalc-copy-<id>``) beside its destination and renamed into place when
complete. With ``overwrite`` and an existing folder, the finished staging tree is merged
into it file by file, each file replaced by one rename. Whatever is created is given to
the destination project's user (``ProjectFS.owner``). A failure or a cancellation removes
the staging tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posixpath
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cocalc_k8s.core.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from cocalc_k8s.core.projectfs import ProjectFS

STAGING_PREFIX = ".cocalc-copy-"
MAX_ENTRIES = 1_000_000
MAX_REPORTED = 200  # skipped entries listed in the report; the count is always exact
CHUNK = 1 << 20

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Cancelled(Exception):
    """The copy was cancelled; nothing of it was left at the destination."""


@dataclass
class Progress:
    """Shared between the copying thread (writes) and the event loop (reads)."""

    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    def skip(self, path: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_REPORTED:
            self.skipped.append({"path": path, "reason": reason})

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled


@dataclass(frozen=True)
class _Entry:
    rel: str  # relative to the copied root ("" is the root itself)
    kind: str  # "dir" | "file" | "link"
    mode: int = 0o644
    size: int = 0
    target: str = ""


def staging_name(copy_id: str) -> str:
    return STAGING_PREFIX + copy_id


def link_stays_inside(link_rel: str, target: str) -> bool:
    """Whether a symlink at ``link_rel`` (relative to the copied root) pointing to
    ``target`` resolves inside the copied tree, by its text alone (pure)."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link_rel), target))
    return joined != ".." and not joined.startswith("../") and not joined.startswith("/")


def copy_between(
    src: ProjectFS,
    src_path: str,
    dst: ProjectFS,
    dst_path: str,
    *,
    copy_id: str,
    overwrite: bool,
    progress: Progress,
    max_bytes: int,
    room: Callable[[], int | None] = lambda: None,
    skip_hidden: bool = False,
) -> None:
    """Copy ``src_path`` of one home to ``dst_path`` of another (see the module doc).

    ``dst_path`` names the copy itself. ``max_bytes`` caps the copy's size; ``room()``
    says how many bytes the destination may still take (None: no limit), asked before
    the copy starts and checked against what has been written as it goes. With
    ``skip_hidden`` (a published item), names starting with a dot are left out. Raises the
    domain errors (`NotFound`, `Conflict`, `PayloadTooLarge`, ...) or `Cancelled`.
    """
    with src.locate(src_path, follow_last=True) as s:
        if s.name is None:
            raise Forbidden("the home directory itself cannot be copied; pick files or a folder")
        if s.st is None:
            raise NotFound(f"{src_path}: no such file or directory")
        plan = _plan(s.dir_fd, s.name, s.st, progress, skip_hidden=skip_hidden)
    if not plan:
        raise BadRequest(f"{src_path}: nothing to copy ({progress.skipped[0]['reason']})")
    need = sum(e.size for e in plan)
    progress.files_total = sum(1 for e in plan if e.kind != "dir")
    progress.bytes_total = need
    if need > max_bytes:
        raise PayloadTooLarge(
            f"the copy is {_mb(need)}, more than the limit of {_mb(max_bytes)} per copy"
        )
    left = room()
    if left is not None and need > left:
        raise PayloadTooLarge(
            f"the copy needs {_mb(need)} but the destination project has {_mb(max(left, 0))}"
            " left of its disk quota"
        )
    limit = need if left is None else min(left, max_bytes)
    with (
        src.locate(src_path, follow_last=True) as s,
        dst.locate(dst_path, follow_last=True, create_parents=True) as d,
    ):
        if d.name is None:
            raise Conflict("the destination is the home directory; name a file or folder in it")
        assert s.name is not None and s.st is not None
        merge = _check_destination(s.st, d.st, dst_path, overwrite)
        staged = staging_name(copy_id)
        _remove(d.dir_fd, staged)  # left by an earlier attempt of this very copy
        try:
            _build(s.dir_fd, s.name, d.dir_fd, staged, plan, dst, progress, limit)
            progress.check()
            _sync_filesystem(d.dir_fd)  # the files' data first, then the renames below
            if merge:
                _merge(d.dir_fd, staged, d.name, dst, progress)
            else:
                _place(d.dir_fd, staged, d.name, dst_path, replace=overwrite)
            os.fsync(d.dir_fd)
        finally:
            _remove(d.dir_fd, staged)


def remove_staging(dst: ProjectFS, dst_path: str, copy_id: str) -> None:
    """Remove what an interrupted copy left at its destination (nothing if none)."""
    try:
        with dst.locate(dst_path, follow_last=True) as d:
            if d.name is not None:
                _remove(d.dir_fd, staging_name(copy_id))
    except (BadRequest, Forbidden, NotFound):
        pass


def _check_destination(
    src_st: os.stat_result, dst_st: os.stat_result | None, dst_path: str, overwrite: bool
) -> bool:
    """Whether the copy merges into an existing folder; Conflict when it may not go there."""
    if dst_st is None:
        return False
    if not overwrite:
        raise Conflict(f"{dst_path}: already exists (ask to overwrite to replace or merge)")
    src_dir, dst_dir = stat.S_ISDIR(src_st.st_mode), stat.S_ISDIR(dst_st.st_mode)
    if src_dir != dst_dir:
        kinds = ("a folder", "a file")
        raise Conflict(f"{dst_path}: is {kinds[not dst_dir]}, the source is {kinds[not src_dir]}")
    return src_dir


def _plan(
    dir_fd: int, name: str, st: os.stat_result, progress: Progress, *, skip_hidden: bool
) -> list[_Entry]:
    """Everything to copy, walked by descriptors; what will be skipped is reported now."""
    plan: list[_Entry] = []

    def visit(parent: int, name: str, st: os.stat_result, rel: str) -> None:
        progress.check()
        if len(plan) >= MAX_ENTRIES:
            raise PayloadTooLarge(f"the copy has more than {MAX_ENTRIES:,} files and folders")
        shown = rel or name
        if skip_hidden and rel and name.startswith("."):
            progress.skip(shown, "a hidden (dot) file: not part of the published item")
            return
        if stat.S_ISREG(st.st_mode):
            plan.append(_Entry(rel, "file", stat.S_IMODE(st.st_mode) & 0o777, st.st_size))
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=parent)
            if rel and link_stays_inside(rel, target):
                plan.append(_Entry(rel, "link", target=target))
            else:
                progress.skip(shown, "a symbolic link to something outside the copied folder")
        elif stat.S_ISDIR(st.st_mode):
            plan.append(_Entry(rel, "dir", (stat.S_IMODE(st.st_mode) & 0o777) | 0o700))
            fd = os.open(name, _DIR, dir_fd=parent)
            try:
                for child in sorted(_names(fd)):
                    try:
                        child_st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed meanwhile
                    visit(fd, child, child_st, f"{rel}/{child}" if rel else child)
            finally:
                os.close(fd)
        else:
            progress.skip(shown, "not a regular file, folder or link (a device, FIFO or socket)")

    visit(dir_fd, name, st, "")
    return plan


def _build(
    src_dir: int,
    src_name: str,
    dst_dir: int,
    staged: str,
    plan: list[_Entry],
    dst: ProjectFS,
    progress: Progress,
    limit: int,
) -> None:
    """Create the staging tree from the plan, entry by entry (parents come first)."""
    src_root = _open_root(src_dir, src_name, plan[0].kind == "dir")
    dst_root: int | None = None
    try:
        for entry in plan:
            progress.check()
            if entry.rel == "":
                if entry.kind == "dir":
                    os.mkdir(staged, 0o700, dir_fd=dst_dir)
                    dst_root = os.open(staged, _DIR, dir_fd=dst_dir)
                    _own(dst, dst_root)
                else:
                    _copy_file(src_dir, src_name, dst_dir, staged, entry, dst, progress, limit)
                continue
            assert dst_root is not None and src_root is not None
            parent, leaf = posixpath.split(entry.rel)
            with _opened(src_root, parent) as sp, _opened(dst_root, parent) as dp:
                if entry.kind == "dir":
                    os.mkdir(leaf, 0o700, dir_fd=dp)
                    fd = os.open(leaf, _DIR, dir_fd=dp)
                    try:
                        _own(dst, fd)
                    finally:
                        os.close(fd)
                elif entry.kind == "link":
                    os.symlink(entry.target, leaf, dir_fd=dp)
                    if dst.owner is not None:
                        os.chown(leaf, *dst.owner, dir_fd=dp, follow_symlinks=False)
                    progress.files_done += 1
                else:
                    _copy_file(sp, leaf, dp, leaf, entry, dst, progress, limit)
        _set_dir_modes(dst_root, plan)
    except OSError as exc:
        raise _domain(exc) from None
    finally:
        for root in (src_root, dst_root):
            if root is not None:
                os.close(root)


def _copy_file(
    src_dir: int,
    src_name: str,
    dst_dir: int,
    dst_name: str,
    entry: _Entry,
    dst: ProjectFS,
    progress: Progress,
    limit: int,
) -> None:
    try:
        sfd = os.open(src_name, _READ, dir_fd=src_dir)
    except FileNotFoundError:
        progress.skip(entry.rel or src_name, "removed while the copy ran")
        return
    try:
        if not stat.S_ISREG(os.fstat(sfd).st_mode):
            progress.skip(entry.rel or src_name, "replaced by something else while the copy ran")
            return
        os.set_blocking(sfd, True)
        dfd = os.open(dst_name, _CREATE, 0o600, dir_fd=dst_dir)
        try:
            _own(dst, dfd)
            _copy_bytes(sfd, dfd, progress, limit)
            os.fchmod(dfd, entry.mode)
        finally:
            os.close(dfd)
        progress.files_done += 1
    finally:
        os.close(sfd)


def _copy_bytes(sfd: int, dfd: int, progress: Progress, limit: int) -> None:
    """The file's bytes, in the kernel where it can (copy_file_range: no trip through
    user space, and a reflink on file systems that share blocks), else read and write."""
    in_kernel = True
    while True:
        progress.check()
        if in_kernel:
            try:
                moved = os.copy_file_range(sfd, dfd, CHUNK * 8)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                in_kernel = False
                continue
        else:
            chunk = os.read(sfd, CHUNK)
            moved = len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(dfd, view) :]
        if not moved:
            return
        progress.bytes_done += moved
        if progress.bytes_done > limit:
            raise PayloadTooLarge(
                f"the source grew while it was copied: the copy would exceed {_mb(limit)}"
            )


def _merge(dir_fd: int, staged: str, name: str, dst: ProjectFS, progress: Progress) -> None:
    """Move the finished staging tree into the existing folder ``name``, one rename per
    file (replacing what is there); an entry of another kind in the way is reported."""
    sfd = os.open(staged, _DIR, dir_fd=dir_fd)
    try:
        dfd = os.open(name, _DIR, dir_fd=dir_fd)
    except OSError:
        os.close(sfd)
        raise
    try:
        _merge_dir(sfd, dfd, "", dst, progress)
    finally:
        os.close(sfd)
        os.close(dfd)


def _merge_dir(sfd: int, dfd: int, rel: str, dst: ProjectFS, progress: Progress) -> None:
    for child in sorted(_names(sfd)):
        shown = f"{rel}/{child}" if rel else child
        st = os.stat(child, dir_fd=sfd, follow_symlinks=False)
        try:
            there = os.stat(child, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if stat.S_ISDIR(st.st_mode) and there is not None and stat.S_ISDIR(there.st_mode):
            inner_s = os.open(child, _DIR, dir_fd=sfd)
            try:
                inner_d = os.open(child, _DIR, dir_fd=dfd)
            except OSError:
                os.close(inner_s)
                progress.skip(shown, "the folder at the destination could not be opened")
                continue
            try:
                _merge_dir(inner_s, inner_d, shown, dst, progress)
            finally:
                os.close(inner_s)
                os.close(inner_d)
        elif there is not None and stat.S_ISDIR(there.st_mode) != stat.S_ISDIR(st.st_mode):
            progress.skip(shown, "something of another kind is in the way at the destination")
        else:
            os.rename(child, child, src_dir_fd=sfd, dst_dir_fd=dfd)


def _place(dir_fd: int, staged: str, name: str, dst_path: str, *, replace: bool) -> None:
    """Rename the finished copy into place; only over an existing file when asked."""
    try:
        there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        there = None
    if there is not None and not replace:
        raise Conflict(f"{dst_path}: appeared while the copy ran")
    try:
        os.rename(staged, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise Conflict(f"{dst_path}: appeared while the copy ran") from None
        raise _domain(exc) from None


def _set_dir_modes(root: int | None, plan: list[_Entry]) -> None:
    """Folders get their modes last (a read-only folder could not be filled before)."""
    if root is None:
        return
    for entry in reversed(plan):
        if entry.kind != "dir":
            continue
        if entry.rel == "":
            os.fchmod(root, entry.mode)
            continue
        parent, leaf = posixpath.split(entry.rel)
        with _opened(root, parent) as dp:
            os.chmod(leaf, entry.mode, dir_fd=dp, follow_symlinks=False)


@contextlib.contextmanager
def _opened(root: int, rel: str) -> Iterator[int]:
    """A descriptor of ``rel`` below ``root`` (walked with O_NOFOLLOW), closed after."""
    fds: list[int] = []
    try:
        fd = root
        for part in rel.split("/") if rel else ():
            fd = os.open(part, _DIR, dir_fd=fd)
            fds.append(fd)
        yield fd
    finally:
        for fd in fds:
            os.close(fd)


def _open_root(dir_fd: int, name: str, is_dir: bool) -> int | None:
    return os.open(name, _DIR, dir_fd=dir_fd) if is_dir else None


def _sync_filesystem(fd: int) -> None:
    """syncfs(2): one flush of the destination's file system for the whole copy, rather
    than an fsync per file (thousands of small files would each wait for the disk)."""
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) == 0:
            return
    except (AttributeError, OSError):
        pass
    os.sync()


def _own(dst: ProjectFS, fd: int) -> None:
    if dst.owner is not None:
        os.fchown(fd, *dst.owner)


def _names(fd: int) -> list[str]:
    with os.scandir(fd) as it:
        return [e.name for e in it]


def _remove(dir_fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd, ignore_errors=True)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _domain(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return PayloadTooLarge("the destination's disk is full")
    if exc.errno == errno.EEXIST:
        return Conflict("a file appeared at the destination while the copy ran")
    return BadRequest(f"the copy failed: {os.strerror(exc.errno or 0).lower()}")


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB"
