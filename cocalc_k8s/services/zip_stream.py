"""A folder of a project as a zip archive, streamed in constant memory.

`zipfile` writes to a non-seekable pipe (so each entry gets a data descriptor) in a
worker thread; the pipe hands 256 KiB pieces to the event loop through a bounded queue,
so a slow client slows the thread down instead of filling memory.

Confinement: the walk starts from a directory descriptor given by `ProjectFS.open_dir`
and goes down only by ``O_NOFOLLOW`` opens relative to descriptors. **Symbolic links are
skipped**, wherever they point (one inside the home would duplicate data or loop; one
outside must not be read). FIFOs, sockets and devices are skipped too; so is anything
that cannot be read or that disappears during the walk. With `skip_hidden` (the share
site's zips), names starting with a dot are left out as well, at every depth.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import time
import zipfile
from collections.abc import AsyncGenerator

PIECE = 256 * 1024
QUEUE_PIECES = 8
READ = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# Already compressed: stored as they are, not deflated again.
STORED = frozenset(
    {"png", "jpg", "jpeg", "gif", "webp", "avif", "heic", "zip", "gz", "tgz", "bz2", "xz"}
    | {"zst", "7z", "rar", "jar", "whl", "mp3", "mp4", "m4a", "mkv", "mov", "webm", "ogg"}
    | {"flac", "pdf", "docx", "xlsx", "pptx", "npz", "parquet"}
)


class _Pipe:
    """A write-only, non-seekable file for zipfile that feeds an asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]):
        self._loop = loop
        self._queue = queue
        self._buffer = bytearray()
        self.broken = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= PIECE:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def flush(self) -> None:
        pass  # pieces go out when full, and at `finish`

    def close(self) -> None:
        pass  # the queue is closed by `close_queue`, after zipfile's last write

    def finish(self) -> None:
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()

    def _send(self, piece: bytes | None) -> None:
        if self.broken:
            raise BrokenPipeError("the client went away")
        asyncio.run_coroutine_threadsafe(self._queue.put(piece), self._loop).result()

    def close_queue(self) -> None:
        asyncio.run_coroutine_threadsafe(self._queue.put(None), self._loop).result()


async def zip_pieces(dir_fd: int, *, skip_hidden: bool = False) -> AsyncGenerator[bytes, None]:
    """The zip of the tree under `dir_fd` (which this closes), piece by piece."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_PIECES)
    pipe = _Pipe(loop, queue)

    def produce() -> None:
        try:
            with zipfile.ZipFile(pipe, "w", allowZip64=True) as archive:
                _add_dir(archive, dir_fd, "", skip_hidden)
            pipe.finish()
        finally:
            os.close(dir_fd)
            pipe.close_queue()

    task = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        while (piece := await queue.get()) is not None:
            yield piece
        await task  # the producer's error, if any
    finally:
        pipe.broken = True
        while not task.done():  # let a blocked put return so the thread can stop
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            getter.cancel()


def _add_dir(archive: zipfile.ZipFile, dir_fd: int, prefix: str, skip_hidden: bool) -> None:
    with os.scandir(dir_fd) as it:
        names = sorted(e.name for e in it if not (skip_hidden and e.name.startswith(".")))
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    archive.writestr(_info(prefix + name + "/", st), b"")
                    _add_dir(archive, fd, prefix + name + "/", skip_hidden)
                finally:
                    os.close(fd)
            elif stat.S_ISREG(st.st_mode):
                _add_file(archive, dir_fd, name, prefix + name)
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            continue  # removed, replaced or unreadable meanwhile: left out
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a symlink after the stat
                continue
            raise


def _add_file(archive: zipfile.ZipFile, dir_fd: int, name: str, arcname: str) -> None:
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    with open(fd, "rb") as source:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return
        os.set_blocking(fd, True)
        info = _info(arcname, st)
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        info.compress_type = zipfile.ZIP_STORED if ext in STORED else zipfile.ZIP_DEFLATED
        info.file_size = st.st_size  # decides zip64 before the data is written
        with archive.open(info, "w") as target:
            while chunk := source.read(READ):
                target.write(chunk)


def _info(arcname: str, st: os.stat_result) -> zipfile.ZipInfo:
    stamp = time.localtime(max(st.st_mtime, 315532800 + 86400))  # zip dates start in 1980
    info = zipfile.ZipInfo(arcname, date_time=stamp[:6])
    info.external_attr = (stat.S_IMODE(st.st_mode) | (st.st_mode & 0o170000)) << 16
    if arcname.endswith("/"):
        info.external_attr |= 0x10  # MS-DOS directory flag
    return info


def zip_filename(rel_path: str, project_title: str) -> str:
    """`results.zip` for a folder, the project's title for its home."""
    name = rel_path.rstrip("/").rsplit("/", 1)[-1] or project_title.strip() or "project"
    return "".join(c if c.isprintable() and c not in '/\\"' else "_" for c in name) + ".zip"
