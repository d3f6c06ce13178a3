"""A project's home directory, with every user path confined to it (blocking; stdlib only).

The project agent calls these functions from a worker thread; so does the hub, which has
every project's home mounted (share rendering, copies, a stopped project's files).

Why directory file descriptors and not ``realpath`` checks
-----------------------------------------------------------
A check on a path name followed by a use of the same name is a race: between the two, a
process inside the project can replace a directory component with a symlink to
``/etc`` or to another project's home, and the hub (which can read and write every
project) would follow it. So no operation here ever hands a multi-component path to the
kernel. A path is walked one component at a time from an open descriptor of the home,
the way ``openat2(RESOLVE_IN_ROOT)`` would (Python does not expose it):

* each component is ``lstat``-ed relative to the descriptor of its parent, and a
  directory is opened with ``O_NOFOLLOW | O_DIRECTORY``, so if it was swapped for a
  symlink after the ``lstat`` the open fails instead of following it;
* a symlink is expanded by this code, not by the kernel: a relative target is walked
  from the directory holding the link, ``..`` pops one directory and popping past the
  home is refused, an absolute target is accepted only when it names a place inside the
  home (then walked from the home's descriptor). Symlinks inside the home work as users
  expect; none can lead out of it;
* the final operation uses the parent's descriptor (``dir_fd=``), and opens files with
  ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a FIFO cannot hang a worker thread). ``rename``,
  ``unlink`` and ``rmdir`` never follow a final symlink anyway.

What remains: a directory already opened may be *moved* elsewhere by the project while an
operation runs; the operation then continues inside that directory wherever it now is.
A project can only move it where its own uid may write, so this gives it nothing it could
not do itself. ``resolve()`` returns a plain ``Path`` for callers that need one (a
``cwd`` for a process running as the project's user); it is a check-then-use by nature
and must not be used by the hub to read or write on a project's behalf.

Errors are the domain errors of ``cocalc_k8s.core.errors``: ``BadRequest`` for malformed
paths, ``Forbidden`` for escapes, ``NotFound`` for missing files, ``Conflict`` when a
destination exists, ``PayloadTooLarge`` for over-size writes and a full disk. Messages
name the user's relative path, never an absolute one.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NoReturn, TypedDict

from cocalc_k8s.core.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge

MAX_PATH_BYTES = 4096  # PATH_MAX
MAX_NAME_BYTES = 255  # NAME_MAX
MAX_SYMLINK_HOPS = 40  # as the kernel's own limit
TEMP_PREFIX = ".cocalc-upload-"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Entry(TypedDict):
    name: str
    is_dir: bool
    size: int
    mtime: float


def split_path(rel_path: str) -> list[str]:
    """The components of a user path, checked for shape only (no I/O).

    ``""``, ``"."`` and ``"/"``-free relative paths are fine; ``..`` components are kept
    (the walk decides whether they escape).
    """
    if not isinstance(rel_path, str):
        raise BadRequest("path must be a string")
    if "\x00" in rel_path:
        raise BadRequest("path must not contain NUL bytes")
    try:
        size = len(rel_path.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        raise BadRequest("path is not valid text") from None
    if size > MAX_PATH_BYTES:
        raise BadRequest(f"path is longer than {MAX_PATH_BYTES} bytes")
    if rel_path.startswith("/"):
        raise Forbidden("path must be relative to the project's home directory")
    parts = [p for p in rel_path.split("/") if p not in ("", ".")]
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise BadRequest(f"a file name is longer than {MAX_NAME_BYTES} bytes")
    return parts


def fail(exc: OSError, rel_path: str) -> NoReturn:
    """Map an OSError to the domain error a user should see (also for modules that walk
    with `ProjectFS.locate` and operate themselves, such as the SFTP server)."""
    code = exc.errno
    shown = rel_path or "the home directory"
    if code == errno.ENOENT:
        raise NotFound(f"{shown}: no such file or directory") from exc
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        raise Conflict(f"{shown}: already exists") from exc
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise Forbidden(f"{shown}: permission denied") from exc
    if code == errno.ELOOP:
        raise Forbidden(f"{shown}: changed into a symbolic link during the operation") from exc
    if code in (errno.ENOSPC, errno.EDQUOT):
        raise PayloadTooLarge("no space left in the project") from exc
    if code == errno.ENOTDIR:
        raise BadRequest(f"{shown}: a component is not a directory") from exc
    if code == errno.EISDIR:
        raise BadRequest(f"{shown}: is a directory") from exc
    if code == errno.ENAMETOOLONG:
        raise BadRequest(f"{shown}: name too long") from exc
    if code == errno.EINVAL:
        raise BadRequest(f"{shown}: invalid operation") from exc
    if code == errno.EXDEV:
        raise BadRequest(f"{shown}: cannot move across file systems") from exc
    raise exc


@dataclass
class _Chain:
    """Open descriptors from the home (``fds[0]``) down to the current directory."""

    fds: list[int]
    names: list[str] = field(default_factory=list)

    @property
    def fd(self) -> int:
        return self.fds[-1]

    def push(self, name: str, fd: int) -> None:
        self.fds.append(fd)
        self.names.append(name)

    def pop(self) -> bool:
        if len(self.fds) == 1:
            return False
        os.close(self.fds.pop())
        self.names.pop()
        return True

    def to_root(self) -> None:
        while self.pop():
            pass

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


@dataclass
class Location:
    """Where a path leads: ``name`` inside the directory ``chain.fd``.

    ``name`` is None when the path is the home itself. ``st`` is the ``lstat`` of the
    name, None when it does not exist.
    """

    chain: _Chain
    name: str | None
    st: os.stat_result | None

    @property
    def dir_fd(self) -> int:
        return self.chain.fd

    @property
    def rel(self) -> str:
        return "/".join([*self.chain.names, *([self.name] if self.name else [])])


class ProjectFS:
    """The files of one project, addressed by paths relative to its home."""

    def __init__(self, home: Path, *, owner: tuple[int, int] | None = None) -> None:
        """`owner` (uid, gid): give what this creates to the project's user, for a hub
        running as root next to projects that each have their own uid."""
        self.home = Path(os.path.abspath(home))
        self._home_prefixes = {str(self.home), os.path.realpath(self.home)}
        self.owner = owner

    def _own(self, dir_fd: int, name: str) -> None:
        if self.owner is not None:
            os.chown(name, *self.owner, dir_fd=dir_fd, follow_symlinks=False)

    # -- resolution ---------------------------------------------------------------

    def _open_home(self) -> _Chain:
        try:
            fd = os.open(self.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound("the project's home directory does not exist") from None
        return _Chain([fd])

    def _inside_home(self, target: str) -> list[str]:
        """The components, relative to the home, of an absolute symlink target."""
        clean = os.path.normpath(target)
        for prefix in self._home_prefixes:
            if clean == prefix:
                return []
            if clean.startswith(prefix + "/"):
                return split_path(clean[len(prefix) + 1 :])
        raise Forbidden("a symbolic link points outside the project")

    @contextmanager
    def _locate(
        self, rel_path: str, *, follow_last: bool, create_parents: bool = False
    ) -> Iterator[Location]:
        """Walk ``rel_path`` from the home without ever leaving it (see the module doc).

        With ``follow_last`` a final symlink is expanded too; without it the location is
        the link itself. A path ending in ``..`` is turned into (parent, name) form.
        """
        pending = deque(split_path(rel_path))
        chain = self._open_home()
        try:
            yield self._walk(chain, pending, rel_path, follow_last, create_parents)
        finally:
            chain.close()

    def _walk(
        self,
        chain: _Chain,
        pending: deque[str],
        rel_path: str,
        follow_last: bool,
        create_parents: bool,
    ) -> Location:
        hops = 0
        while pending:
            part = pending.popleft()
            if part == "..":
                if not chain.pop():
                    raise Forbidden("path leads outside the project")
                continue
            last = not pending
            try:
                st = os.stat(part, dir_fd=chain.fd, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return Location(chain, part, None)
                if not create_parents:
                    raise NotFound(f"{rel_path}: no such file or directory") from None
                try:
                    os.mkdir(part, dir_fd=chain.fd)
                    self._own(chain.fd, part)
                except FileExistsError:
                    pass  # created meanwhile: walk whatever is there now
                except OSError as exc:
                    fail(exc, rel_path)
                pending.appendleft(part)
                continue
            except OSError as exc:
                fail(exc, rel_path)
            if stat.S_ISLNK(st.st_mode):
                if last and not follow_last:
                    return Location(chain, part, st)
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise BadRequest(f"{rel_path}: too many levels of symbolic links")
                target = os.readlink(part, dir_fd=chain.fd)
                if target.startswith("/"):
                    inner = self._inside_home(target)
                    chain.to_root()
                else:
                    inner = [p for p in target.split("/") if p not in ("", ".")]
                pending.extendleft(reversed(inner))
                continue
            if last:
                return Location(chain, part, st)
            if not stat.S_ISDIR(st.st_mode):
                raise BadRequest(f"{rel_path}: a component is not a directory")
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=chain.fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and hops < MAX_SYMLINK_HOPS:
                    hops += 1  # swapped after the lstat: look again
                    pending.appendleft(part)
                    continue
                fail(exc, rel_path)
            chain.push(part, fd)
        # The path was empty or ended in "..": it names a directory of the chain itself.
        if not chain.names:
            return Location(chain, None, os.fstat(chain.fd))
        name = chain.names[-1]
        chain.pop()
        return Location(chain, name, os.stat(name, dir_fd=chain.fd, follow_symlinks=False))

    def locate(
        self, rel_path: str, *, follow_last: bool, create_parents: bool = False
    ) -> AbstractContextManager[Location]:
        """The confined location of ``rel_path`` (its parent's descriptor, its name and
        its lstat, or None when missing), for operations kept in modules of their own
        (`cocalc_k8s.core.tree_copy`). Valid only inside the ``with`` block."""
        return self._locate(rel_path, follow_last=follow_last, create_parents=create_parents)

    def resolve(self, rel_path: str, *, must_exist: bool = True) -> Path:
        """The absolute path that ``rel_path`` names, symlinks inside the home expanded.

        For callers that need a path name (a process's ``cwd``); not race-free against
        the project itself, so the hub must use the operations below instead.
        """
        with self._locate(rel_path, follow_last=True) as loc:
            if must_exist and loc.st is None:
                raise NotFound(f"{rel_path}: no such file or directory")
            return self.home.joinpath(*loc.chain.names, *([loc.name] if loc.name else []))

    # -- reading ------------------------------------------------------------------

    def listing(self, rel_path: str = "") -> list[Entry]:
        """The entries of a directory: directories first, then by name.

        A symlink is described by what it points to when that is inside the home, and as
        a plain zero-size entry (never followed) when it points outside or nowhere.
        """
        with self._locate(rel_path, follow_last=True) as loc:
            fd = self._open_dir(loc, rel_path)
            try:
                found = (self._entry(fd, loc.rel, name) for name in _scandir(fd))
                entries = [entry for entry in found if entry is not None]
            finally:
                os.close(fd)
        entries.sort(key=lambda e: (not e["is_dir"], e["name"].lower(), e["name"]))
        return entries

    def _open_dir(self, loc: Location, rel_path: str) -> int:
        if loc.name is None:
            return os.dup(loc.dir_fd)
        if loc.st is None:
            raise NotFound(f"{rel_path}: no such file or directory")
        if not stat.S_ISDIR(loc.st.st_mode):
            raise BadRequest(f"{rel_path}: not a directory")
        try:
            return os.open(loc.name, _DIR_FLAGS, dir_fd=loc.dir_fd)
        except OSError as exc:
            fail(exc, rel_path)

    def _entry(self, dir_fd: int, rel_dir: str, name: str) -> Entry | None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # removed since the directory was read
        if stat.S_ISLNK(st.st_mode):
            try:
                with self._locate(f"{rel_dir}/{name}".lstrip("/"), follow_last=True) as target:
                    if target.st is not None:
                        st = target.st
            except (BadRequest, Forbidden, NotFound):
                pass
        is_dir = stat.S_ISDIR(st.st_mode)
        return {"name": name, "is_dir": is_dir, "size": st.st_size, "mtime": st.st_mtime}

    def open_read(self, rel_path: str) -> BinaryIO:
        """A regular file opened for reading (the caller closes it)."""
        with self._locate(rel_path, follow_last=True) as loc:
            if loc.name is None or (loc.st is not None and stat.S_ISDIR(loc.st.st_mode)):
                raise BadRequest(f"{rel_path or 'the home directory'}: is a directory")
            if loc.st is None:
                raise NotFound(f"{rel_path}: no such file or directory")
            try:
                fd = os.open(loc.name, _READ_FLAGS, dir_fd=loc.dir_fd)
            except OSError as exc:
                fail(exc, rel_path)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise BadRequest(f"{rel_path}: not a regular file")
        os.set_blocking(fd, True)
        return open(fd, "rb")  # the caller closes it

    def size(self, rel_path: str) -> int:
        """Bytes allocated to ``rel_path`` (a file, or a tree: symlinks not followed, hard
        links counted once); 0 when it does not exist."""
        try:
            with self._locate(rel_path, follow_last=False) as loc:
                if loc.st is None:
                    return 0
                total = loc.st.st_blocks * 512
                if loc.name is not None and stat.S_ISDIR(loc.st.st_mode):
                    fd = os.open(loc.name, _DIR_FLAGS, dir_fd=loc.dir_fd)
                    try:
                        total += _tree_bytes(fd, {(loc.st.st_dev, loc.st.st_ino)})
                    finally:
                        os.close(fd)
                return total
        except NotFound:
            return 0

    def disk_usage(self) -> int:
        """Bytes allocated under the home (symlinks not followed, hard links counted once)."""
        seen: set[tuple[int, int]] = set()
        chain = self._open_home()
        try:
            return _tree_bytes(chain.fd, seen)
        finally:
            chain.close()

    # -- writing ------------------------------------------------------------------

    def begin_write(self, rel_path: str, *, max_bytes: int) -> AtomicWrite:
        """Start replacing a file atomically; parents are created. See `AtomicWrite`."""
        with self._locate(rel_path, follow_last=True, create_parents=True) as loc:
            if loc.name is None or (loc.st is not None and stat.S_ISDIR(loc.st.st_mode)):
                raise BadRequest(f"{rel_path or 'the home directory'}: is a directory")
            if loc.st is not None and not stat.S_ISREG(loc.st.st_mode):
                raise BadRequest(f"{rel_path}: not a regular file")
            mode = stat.S_IMODE(loc.st.st_mode) & 0o777 if loc.st else None
            writer = AtomicWrite(os.dup(loc.dir_fd), loc.name, rel_path, max_bytes, mode)
            writer.created = loc.st is None
            if self.owner is not None:
                os.fchown(writer.fd, *self.owner)
            return writer

    def check_target(self, rel_path: str) -> None:
        """Fail now if a file could not be written at ``rel_path`` (a directory, not a
        regular file, outside the home); missing parents are fine, they will be made."""
        try:
            with self._locate(rel_path, follow_last=True) as loc:
                if loc.name is None or (loc.st is not None and stat.S_ISDIR(loc.st.st_mode)):
                    raise BadRequest(f"{rel_path or 'the home directory'}: is a directory")
                if loc.st is not None and not stat.S_ISREG(loc.st.st_mode):
                    raise BadRequest(f"{rel_path}: not a regular file")
        except NotFound:
            pass

    def install(self, rel_path: str, src_dir_fd: int, src_name: str) -> None:
        """Move a finished file from a hub-private directory to ``rel_path`` atomically
        (replacing a file there, keeping its permissions); parents are created. Across
        file systems it is copied through an `AtomicWrite` instead."""
        with self._locate(rel_path, follow_last=True, create_parents=True) as loc:
            if loc.name is None or (loc.st is not None and stat.S_ISDIR(loc.st.st_mode)):
                raise BadRequest(f"{rel_path or 'the home directory'}: is a directory")
            if loc.st is not None and not stat.S_ISREG(loc.st.st_mode):
                raise BadRequest(f"{rel_path}: not a regular file")
            mode = stat.S_IMODE(loc.st.st_mode) & 0o777 if loc.st else 0o644
            os.chmod(src_name, mode, dir_fd=src_dir_fd)  # the source directory is the hub's
            if self.owner is not None:
                os.chown(src_name, *self.owner, dir_fd=src_dir_fd, follow_symlinks=False)
            try:
                os.rename(src_name, loc.name, src_dir_fd=src_dir_fd, dst_dir_fd=loc.dir_fd)
                os.fsync(loc.dir_fd)
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    fail(exc, rel_path)
        with (
            open(os.open(src_name, _READ_FLAGS, dir_fd=src_dir_fd), "rb") as src,
            self.begin_write(rel_path, max_bytes=1 << 62) as writer,
        ):
            os.set_blocking(src.fileno(), True)
            while chunk := src.read(1 << 20):
                writer.write(chunk)
            writer.commit()
        os.unlink(src_name, dir_fd=src_dir_fd)

    def open_dir(self, rel_path: str) -> int:
        """A descriptor of the directory ``rel_path`` (the caller closes it); walking down
        from it with ``O_NOFOLLOW`` and ``follow_symlinks=False`` stays in the home."""
        with self._locate(rel_path, follow_last=True) as loc:
            return self._open_dir(loc, rel_path)

    def write_atomic(self, rel_path: str, chunks: Iterable[bytes], max_bytes: int) -> int:
        """Replace (or create) a file with ``chunks``; returns the size written.

        Readers see the old content or the new, never a mix; on any failure, including
        more than ``max_bytes`` (PayloadTooLarge), the old file is left as it was and no
        temporary file remains.
        """
        with self.begin_write(rel_path, max_bytes=max_bytes) as writer:
            for chunk in chunks:
                writer.write(chunk)
            writer.commit()
            return writer.size

    def mkdir(self, rel_path: str) -> None:
        """Create a directory and its parents; fine if it already exists."""
        with self._locate(rel_path, follow_last=True, create_parents=True) as loc:
            if loc.name is None or (loc.st is not None and stat.S_ISDIR(loc.st.st_mode)):
                return
            if loc.st is not None:
                raise Conflict(f"{rel_path}: exists and is not a directory")
            try:
                os.mkdir(loc.name, dir_fd=loc.dir_fd)
                self._own(loc.dir_fd, loc.name)
            except FileExistsError:
                pass
            except OSError as exc:
                fail(exc, rel_path)

    def delete(self, rel_path: str) -> None:
        """Remove a file, a symlink (not its target) or a whole directory tree."""
        with self._locate(rel_path, follow_last=False) as loc:
            if loc.name is None:
                raise Forbidden("the project's home directory cannot be deleted")
            if loc.st is None:
                raise NotFound(f"{rel_path}: no such file or directory")
            try:
                if stat.S_ISDIR(loc.st.st_mode):
                    # rmtree with dir_fd walks by descriptors and never follows symlinks.
                    shutil.rmtree(loc.name, dir_fd=loc.dir_fd)
                else:
                    os.unlink(loc.name, dir_fd=loc.dir_fd)
            except OSError as exc:
                fail(exc, rel_path)

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` (a symlink is moved as itself) to ``dst``, which must not exist."""
        with (
            self._locate(src, follow_last=False) as s,
            self._locate(dst, follow_last=False, create_parents=True) as d,
        ):
            self._check_src_dst(s, d, src, dst)
            assert s.name is not None and d.name is not None
            try:
                os.rename(s.name, d.name, src_dir_fd=s.dir_fd, dst_dir_fd=d.dir_fd)
            except OSError as exc:
                fail(exc, dst if exc.errno == errno.EEXIST else src)

    def copy(self, src: str, dst: str) -> None:
        """Copy a file or a tree to ``dst`` (which must not exist); symlinks are copied as
        links, never followed; FIFOs, sockets and devices are skipped."""
        with (
            self._locate(src, follow_last=False) as s,
            self._locate(dst, follow_last=False, create_parents=True) as d,
        ):
            self._check_src_dst(s, d, src, dst)
            assert s.name is not None and d.name is not None and s.st is not None
            if stat.S_ISDIR(s.st.st_mode):
                inside = {(st.st_dev, st.st_ino) for st in map(os.fstat, d.chain.fds)}
                if (s.st.st_dev, s.st.st_ino) in inside:
                    raise BadRequest(f"{src}: cannot copy a directory into itself")
            try:
                _copy_entry(s.dir_fd, s.name, d.dir_fd, d.name)
                if self.owner is not None:
                    give_tree(d.dir_fd, d.name, *self.owner)
            except OSError as exc:
                if exc.errno != errno.EEXIST:  # else the destination is someone else's
                    _remove_quietly(d.dir_fd, d.name)
                fail(exc, dst if exc.errno in (errno.ENOSPC, errno.EDQUOT) else src)

    @staticmethod
    def _check_src_dst(s: Location, d: Location, src: str, dst: str) -> None:
        if s.name is None:
            raise Forbidden("the project's home directory cannot be moved or copied")
        if s.st is None:
            raise NotFound(f"{src}: no such file or directory")
        if d.name is None or d.st is not None:
            raise Conflict(f"{dst or 'the home directory'}: already exists")


@contextmanager
def rooted_at(fs: ProjectFS, rel_dir: str) -> Iterator[ProjectFS]:
    """A `ProjectFS` whose home is the folder ``rel_dir`` of ``fs`` (opened once through
    the confined walk, then reached as ``/proc/self/fd/N``): every path below is walked
    from it, and nothing above it (``..``, a symlink climbing out) is reachable. For a
    published folder; the descriptor is closed when the block ends."""
    fd = fs.open_dir(rel_dir)
    try:
        yield ProjectFS(Path(f"/proc/self/fd/{fd}"), owner=fs.owner)
    finally:
        os.close(fd)


class AtomicWrite:
    """One atomic replacement of a file: a temporary file in the same directory, written,
    fsync-ed, then renamed over the target. Use as a context manager: leaving it without
    `commit()` (or with an exception) removes the temporary file."""

    def __init__(
        self, dir_fd: int, name: str, rel_path: str, max_bytes: int, mode: int | None
    ) -> None:
        self._dir_fd = dir_fd
        self._name = name
        self._rel = rel_path
        self._max = max_bytes
        self.size = 0
        self.created = False  # True when no file was there before
        self._temp: str | None = TEMP_PREFIX + secrets.token_hex(8)
        try:
            self._fd = os.open(self._temp, _CREATE_FLAGS, 0o666, dir_fd=dir_fd)
            if mode is not None:
                os.fchmod(self._fd, mode)  # a replaced file keeps its permissions
        except OSError as exc:
            self._temp = None
            os.close(dir_fd)
            fail(exc, rel_path)

    @property
    def fd(self) -> int:
        return self._fd

    def __enter__(self) -> AtomicWrite:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max:
            raise PayloadTooLarge(f"file is larger than the limit of {self._max} bytes")
        try:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            fail(exc, self._rel)

    def commit(self) -> None:
        assert self._temp is not None, "already finished"
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.rename(self._temp, self._name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            self._temp = None
            os.fsync(self._dir_fd)  # the rename itself survives a crash
        except OSError as exc:
            fail(exc, self._rel)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the temporary file (no-op after commit or a previous abort)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._temp is not None:
            _remove_quietly(self._dir_fd, self._temp)
            self._temp = None
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1


def _scandir(fd: int) -> list[str]:
    with os.scandir(fd) as it:
        return [e.name for e in it]


def _remove_quietly(dir_fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dir_fd, ignore_errors=True)
        else:
            os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _copy_entry(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    st = os.stat(src, dir_fd=src_dir, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src, dir_fd=src_dir), dst, dir_fd=dst_dir)
    elif stat.S_ISDIR(st.st_mode):
        _copy_dir(src_dir, src, dst_dir, dst, stat.S_IMODE(st.st_mode))
    elif stat.S_ISREG(st.st_mode):
        _copy_file(src_dir, src, dst_dir, dst)


def _copy_dir(src_dir: int, src: str, dst_dir: int, dst: str, mode: int) -> None:
    os.mkdir(dst, 0o700, dir_fd=dst_dir)
    sfd = os.open(src, _DIR_FLAGS, dir_fd=src_dir)
    try:
        dfd = os.open(dst, _DIR_FLAGS, dir_fd=dst_dir)
        try:
            for name in _scandir(sfd):
                _copy_entry(sfd, name, dfd, name)
            os.fchmod(dfd, mode & 0o777)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _copy_file(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    sfd = os.open(src, _READ_FLAGS, dir_fd=src_dir)
    try:
        st = os.fstat(sfd)
        if not stat.S_ISREG(st.st_mode):
            return
        os.set_blocking(sfd, True)
        dfd = os.open(dst, _CREATE_FLAGS, stat.S_IMODE(st.st_mode) & 0o777, dir_fd=dst_dir)
        try:
            with open(sfd, "rb", closefd=False) as fsrc, open(dfd, "wb", closefd=False) as fdst:
                shutil.copyfileobj(fsrc, fdst, 1 << 20)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _tree_bytes(dir_fd: int, seen: set[tuple[int, int]]) -> int:
    total = 0
    for name in _scandir(dir_fd):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    total += _tree_bytes(fd, seen)
                finally:
                    os.close(fd)
        except OSError:
            continue  # removed or replaced meanwhile
    return total


def give_tree(dir_fd: int, name: str, uid: int, gid: int) -> None:
    """chown a tree to uid:gid, by descriptors, never following a symlink."""
    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
        return
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for child in _scandir(fd):
            give_tree(fd, child, uid, gid)
    finally:
        os.close(fd)


def give_home(home: Path, uid: int, gid: int) -> None:
    """Give a whole home directory to the project's user (its first start with its own uid)."""
    parent = os.open(home.parent, _DIR_FLAGS)
    try:
        give_tree(parent, home.name, uid, gid)
    finally:
        os.close(parent)
