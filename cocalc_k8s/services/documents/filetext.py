"""A document's file on the project's storage: read as text, written atomically.

The hub owns the storage, so this works whether the project runs or not. Every path goes
through `ProjectFiles` (confined to the project's home, symlinks included); every
blocking call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from dataclasses import dataclass

from cocalc_k8s.core.errors import NotFound
from cocalc_k8s.services.files import ProjectFiles

Stamp = tuple[int, int, int]  # (mtime_ns, size, inode): changes whenever the file does


class ReadOnly(Exception):
    """The file cannot be a shared document: `reason` is "binary" or "too-large"."""

    def __init__(self, reason: str, message: str, size: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.size = size


@dataclass(frozen=True, slots=True)
class DiskText:
    text: str | None  # None: no such file
    digest: bytes | None
    stamp: Stamp | None


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


async def read_text(
    files: ProjectFiles, project_id: uuid.UUID, path: str, *, max_bytes: int
) -> DiskText:
    """The file's text; raises ReadOnly for a binary or over-size file."""
    fs = await files.fs(project_id)

    def read() -> DiskText:
        try:
            handle = fs.open_read(path)
        except NotFound:
            return DiskText(None, None, None)
        with handle:
            st = os.fstat(handle.fileno())
            if st.st_size > max_bytes:
                mb = max_bytes // 1024**2
                raise ReadOnly(
                    "too-large", f"This file is over {mb} MB; it opens read-only.", st.st_size
                )
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ReadOnly("too-large", "This file is too large; it opens read-only.", len(data))
        try:
            if b"\0" in data:
                raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
            text = data.decode()
        except UnicodeDecodeError:
            raise ReadOnly(
                "binary", "This file is binary; it opens read-only.", len(data)
            ) from None
        return DiskText(text, hashlib.sha256(data).digest(), _stamp(st))

    return await asyncio.to_thread(read)


async def write_text(
    files: ProjectFiles, project_id: uuid.UUID, path: str, text: str
) -> tuple[bytes, Stamp]:
    """Replace the file atomically (its permissions kept); returns the digest written and
    the new file's stamp (taken from the file written, so a change right after the rename
    is never mistaken for our own)."""
    fs = await files.fs(project_id)
    data = text.encode()

    def write() -> Stamp:
        with fs.begin_write(path, max_bytes=max(files.max_file_bytes, len(data))) as writer:
            writer.write(data)
            st = os.fstat(writer.fd)
            writer.commit()
        return _stamp(st)

    written = await asyncio.to_thread(write)
    return hashlib.sha256(data).digest(), written


async def stamp(files: ProjectFiles, project_id: uuid.UUID, path: str) -> Stamp | None:
    """The file's stamp, None when it does not exist (cheap: one open and fstat)."""
    fs = await files.fs(project_id)

    def probe() -> Stamp | None:
        try:
            with fs.open_read(path) as handle:
                return _stamp(os.fstat(handle.fileno()))
        except NotFound:
            return None

    return await asyncio.to_thread(probe)


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_mtime_ns, st.st_size, st.st_ino)
