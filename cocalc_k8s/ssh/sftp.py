"""The SFTP subsystem (also what scp uses today): a project's home as the whole file system.

The hub serves it itself, on the projects' storage it has mounted, so a stopped project's
files are reachable too. ``/`` is the home; every path is walked by `ProjectFS.locate`
(one component at a time from the home's descriptor, symlinks expanded by that code and
never out of the home), and every operation then uses the parent's descriptor and a final
name, opened with ``O_NOFOLLOW``: neither ``..`` nor a symlink (made before or during the
session, by SFTP or by a process in the project) leads outside. ``chmod`` and friends act
on an opened descriptor, never on a name the kernel would resolve again. Blocking calls
run in worker threads. Ownership changes are refused; what is created belongs to the
project's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import posixpath
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from cocalc_k8s.core.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
)
from cocalc_k8s.core.projectfs import Location, ProjectFS, fail

T = TypeVar("T")
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PERMISSIONS = 0o777  # no setuid, setgid or sticky bits from a client


def relative(path: bytes) -> str:
    """The home-relative path for a client's path (pure): ``/`` is the home, relative
    paths start there, and ``..`` above the root stays at the root, as in a chroot."""
    try:
        text = path.decode()
    except UnicodeDecodeError:
        raise BadRequest("paths must be UTF-8") from None
    if "\x00" in text:
        raise BadRequest("paths must not contain NUL")
    clean = posixpath.normpath("/" + text)
    return clean.lstrip("/")


def _sftp_error(exc: DomainError) -> asyncssh.SFTPError:
    if isinstance(exc, NotFound):
        return asyncssh.SFTPNoSuchFile(exc.message)
    if isinstance(exc, Forbidden):
        return asyncssh.SFTPPermissionDenied(exc.message)
    if isinstance(exc, Conflict):
        return asyncssh.SFTPFileAlreadyExists(exc.message)
    if isinstance(exc, PayloadTooLarge):
        return asyncssh.SFTPNoSpaceOnFilesystem(exc.message)
    return asyncssh.SFTPFailure(exc.message)


async def _off_loop(call: Callable[[], T], rel_path: str) -> T:
    """`call()` in a worker thread, its failures as SFTP errors naming `rel_path`."""
    try:
        try:
            return await asyncio.to_thread(call)
        except OSError as exc:
            fail(exc, rel_path)
    except DomainError as exc:
        raise _sftp_error(exc) from None


def _open_flags(pflags: int) -> int:
    access = pflags & (asyncssh.FXF_READ | asyncssh.FXF_WRITE)
    flags = {
        asyncssh.FXF_READ: os.O_RDONLY,
        asyncssh.FXF_WRITE: os.O_WRONLY,
        asyncssh.FXF_READ | asyncssh.FXF_WRITE: os.O_RDWR,
    }.get(access, os.O_RDONLY)
    if pflags & asyncssh.FXF_APPEND:
        flags |= os.O_APPEND
    if pflags & asyncssh.FXF_CREAT:
        flags |= os.O_CREAT
    if pflags & asyncssh.FXF_TRUNC:
        flags |= os.O_TRUNC
    if pflags & asyncssh.FXF_EXCL:
        flags |= os.O_EXCL
    return flags | _OPEN_FLAGS


def _existing(loc: Location, rel_path: str) -> str:
    if loc.st is None or loc.name is None:
        if loc.name is None:
            raise Forbidden("the home directory itself cannot be changed this way")
        raise NotFound(f"{rel_path}: no such file or directory")
    return loc.name


class ProjectSFTPServer(asyncssh.SFTPServer):
    """One SFTP session on one project's home (`fs`); `touch` marks activity. Writes are
    hub-side writes and count against the disk quota like uploads: `room()` is the bytes
    the project may still take (raising a DomainError when none), asked at each open for
    writing; `wrote(n)` reports what was added."""

    def __init__(
        self,
        chan: asyncssh.SSHServerChannel[bytes],
        fs: ProjectFS,
        touch: Callable[[], None],
        *,
        room: Callable[[], Awaitable[int]],
        wrote: Callable[[int], None],
    ) -> None:
        super().__init__(chan)
        self.fs = fs
        self.touch = touch
        self.room = room
        self.wrote = wrote
        self._files: set[int] = set()
        self._budget: dict[int, int] = {}  # per file open for writing: bytes it may add

    # Paths are mapped by `relative`, never by asyncssh's chroot (which follows links).
    def map_path(self, path: bytes) -> bytes:
        return path

    def reverse_map_path(self, path: bytes) -> bytes:
        return path

    async def realpath(self, path: bytes) -> bytes:
        return ("/" + relative(path)).encode()

    async def _stat(self, path: bytes, follow: bool) -> os.stat_result:
        rel = relative(path)

        def run() -> os.stat_result:
            with self.fs.locate(rel, follow_last=follow) as loc:
                if loc.st is None:
                    raise NotFound(f"{rel}: no such file or directory")
                return loc.st

        return await _off_loop(run, rel)

    async def stat(self, path: bytes) -> os.stat_result:
        return await self._stat(path, True)

    async def lstat(self, path: bytes) -> os.stat_result:
        return await self._stat(path, False)

    async def fstat(self, file_obj: object) -> os.stat_result:
        return await asyncio.to_thread(os.fstat, self._fd(file_obj))

    def _fd(self, file_obj: object) -> int:
        if not isinstance(file_obj, int) or file_obj not in self._files:
            raise asyncssh.SFTPInvalidHandle("no such open file")
        return file_obj

    # -- files --------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        rel = relative(path)
        flags = _open_flags(pflags)
        mode = (attrs.permissions if attrs.permissions is not None else 0o644) & _PERMISSIONS
        budget = None
        if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND):
            try:
                budget = await self.room()
            except DomainError as exc:
                raise _sftp_error(exc) from None

        def run() -> int:
            with self.fs.locate(rel, follow_last=True) as loc:
                if loc.name is None or (loc.st is not None and stat.S_ISDIR(loc.st.st_mode)):
                    raise BadRequest(f"{rel or 'the home directory'}: is a directory")
                created = loc.st is None
                fd = os.open(loc.name, flags, mode, dir_fd=loc.dir_fd)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise BadRequest(f"{rel}: not a regular file")
                if created and self.fs.owner is not None:
                    os.fchown(fd, *self.fs.owner)
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
            return fd

        fd = await _off_loop(run, rel)
        self._files.add(fd)
        if budget is not None:
            self._budget[fd] = budget
        self.touch()
        return fd

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        fd = self._fd(file_obj)
        return await asyncio.to_thread(os.pread, fd, size, offset)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        fd = self._fd(file_obj)
        self.touch()
        budget = self._budget.get(fd)
        if budget is not None:
            if len(data) > budget:
                raise asyncssh.SFTPNoSpaceOnFilesystem("the project is over its disk quota")
            # Taken before the write: clients pipeline writes, so several are under way at
            # once. Rewrites count too: an over-estimate, on the safe side.
            self._budget[fd] = budget - len(data)
        try:
            written = await asyncio.to_thread(os.pwrite, fd, data, offset)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise asyncssh.SFTPNoSpaceOnFilesystem("no space left in the project") from None
            raise
        self.wrote(written)
        return written

    async def close(self, file_obj: object) -> None:
        fd = self._fd(file_obj)
        self._files.discard(fd)
        self._budget.pop(fd, None)
        os.close(fd)

    async def fsync(self, file_obj: object) -> None:
        await asyncio.to_thread(os.fsync, self._fd(file_obj))

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        await asyncio.to_thread(_apply_attrs, self._fd(file_obj), attrs)

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        rel = relative(path)

        def run() -> None:
            with self.fs.locate(rel, follow_last=True) as loc:
                if loc.st is None:
                    raise NotFound(f"{rel}: no such file or directory")
                if loc.name is None:
                    fd = os.dup(loc.dir_fd)
                elif stat.S_ISDIR(loc.st.st_mode):
                    fd = os.open(loc.name, _DIR_FLAGS, dir_fd=loc.dir_fd)
                else:
                    wants_size = attrs.size is not None
                    access = os.O_WRONLY if wants_size else os.O_RDONLY
                    fd = os.open(loc.name, access | _OPEN_FLAGS, dir_fd=loc.dir_fd)
            try:
                _apply_attrs(fd, attrs)
            finally:
                os.close(fd)

        await _off_loop(run, rel)

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self.setstat(path, attrs)

    # -- directories and names ------------------------------------------------------

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        rel = relative(path)

        def run() -> list[tuple[str, os.stat_result]]:
            with self.fs.locate(rel, follow_last=True) as loc:
                if loc.st is None:
                    raise NotFound(f"{rel}: no such file or directory")
                if not stat.S_ISDIR(loc.st.st_mode):
                    raise BadRequest(f"{rel}: not a directory")
                fd = (
                    os.dup(loc.dir_fd)
                    if loc.name is None
                    else os.open(loc.name, _DIR_FLAGS, dir_fd=loc.dir_fd)
                )
            try:
                found = [(".", os.fstat(fd))]
                for name in os.listdir(fd):
                    try:
                        found.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
                    except FileNotFoundError:
                        continue  # removed meanwhile
                return found
            finally:
                os.close(fd)

        for name, st in await _off_loop(run, rel):
            yield SFTPName(name.encode(), attrs=SFTPAttrs.from_local(st))

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        rel = relative(path)
        mode = (attrs.permissions if attrs.permissions is not None else 0o755) & _PERMISSIONS

        def run() -> None:
            with self.fs.locate(rel, follow_last=False) as loc:
                if loc.name is None or loc.st is not None:
                    raise Conflict(f"{rel or 'the home directory'}: already exists")
                os.mkdir(loc.name, mode, dir_fd=loc.dir_fd)
                if self.fs.owner is not None:
                    os.chown(loc.name, *self.fs.owner, dir_fd=loc.dir_fd, follow_symlinks=False)

        await _off_loop(run, rel)
        self.touch()

    async def _remove(self, path: bytes, *, directory: bool) -> None:
        rel = relative(path)

        def run() -> None:
            with self.fs.locate(rel, follow_last=False) as loc:
                name = _existing(loc, rel)
                if directory:
                    os.rmdir(name, dir_fd=loc.dir_fd)
                else:
                    os.unlink(name, dir_fd=loc.dir_fd)  # a symlink itself, never its target

        await _off_loop(run, rel)
        self.touch()

    async def remove(self, path: bytes) -> None:
        await self._remove(path, directory=False)

    async def rmdir(self, path: bytes) -> None:
        await self._remove(path, directory=True)

    async def _rename(self, old: bytes, new: bytes, *, replace: bool) -> None:
        src, dst = relative(old), relative(new)

        def run() -> None:
            with (
                self.fs.locate(src, follow_last=False) as s,
                self.fs.locate(dst, follow_last=False) as d,
            ):
                src_name = _existing(s, src)
                if d.name is None:
                    raise Conflict("the home directory already exists")
                if d.st is not None and not replace:
                    raise Conflict(f"{dst}: already exists")
                os.rename(src_name, d.name, src_dir_fd=s.dir_fd, dst_dir_fd=d.dir_fd)

        await _off_loop(run, src)
        self.touch()

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=True)

    async def readlink(self, path: bytes) -> bytes:
        rel = relative(path)

        def run() -> bytes:
            with self.fs.locate(rel, follow_last=False) as loc:
                name = _existing(loc, rel)
                return os.readlink(name.encode(), dir_fd=loc.dir_fd)

        return await _off_loop(run, rel)

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        """A link at `newpath` whose text is `oldpath`, as given: it is only ever followed
        by `ProjectFS` here (never out of the home) and by the project's own processes."""
        rel = relative(newpath)
        target = oldpath.decode(errors="surrogateescape")

        def run() -> None:
            with self.fs.locate(rel, follow_last=False) as loc:
                if loc.name is None or loc.st is not None:
                    raise Conflict(f"{rel or 'the home directory'}: already exists")
                os.symlink(target, loc.name, dir_fd=loc.dir_fd)
                if self.fs.owner is not None:
                    os.chown(loc.name, *self.fs.owner, dir_fd=loc.dir_fd, follow_symlinks=False)

        await _off_loop(run, rel)

    async def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("hard links are not supported")

    async def statvfs(self, path: bytes) -> Any:
        return await asyncio.to_thread(os.statvfs, self.fs.home)

    def exit(self) -> None:
        for fd in self._files:
            os.close(fd)
        self._files.clear()
        # As sshd does for its sftp-server: OpenSSH's scp fails without an exit status.
        with contextlib.suppress(OSError, asyncssh.Error):
            self.channel.exit(0)


def _apply_attrs(fd: int, attrs: SFTPAttrs) -> None:
    """Permissions, times and size on an open descriptor; owners are never changed (a
    client that sends the owner the file already has is not refused)."""
    st = os.fstat(fd)
    if attrs.uid not in (None, st.st_uid) or attrs.gid not in (None, st.st_gid):
        raise asyncssh.SFTPPermissionDenied("changing a file's owner is not allowed")
    if attrs.size is not None:
        os.ftruncate(fd, attrs.size)
    if attrs.permissions is not None:
        os.chmod(fd, attrs.permissions & _PERMISSIONS)
    if attrs.atime is not None and attrs.mtime is not None:
        os.utime(fd, (attrs.atime, attrs.mtime))
