"""Chunked, resumable uploads into a project's files.

An upload is created with its target path and total size, receives its bytes in chunks
at explicit offsets, and when the last byte arrives it is moved into place atomically
(`ProjectFS.install`: readers see the old file or the new one, never a part).

Staging. The bytes received so far live in ``<data_dir>/uploads/<project_id>/<id>.part``
beside ``<id>.json`` (path, size, who). That directory belongs to the hub: it is outside
every home and never exported to projects, so a project cannot swap a staged file for a
symlink, and half-uploaded data never shows up in the project. Staged uploads count
against the project's disk quota as *reserved* space (their full declared size) when a
new upload is checked, and are listed by ``GET …/uploads``, so a user can always see
(and cancel) what holds that space. An upload untouched for `EXPIRE_SECONDS` is deleted;
a completed one is remembered for `COMPLETED_KEEP_SECONDS` so that a retried last chunk
still learns it is done.

Offsets. The committed offset is the size of the ``.part`` file. A chunk must start at or
below it: bytes below it are skipped (a retried chunk is harmless, whether its first
attempt was lost entirely or half written); a chunk starting above it is refused with
`OffsetMismatch` (409), which carries the offset to continue from. Chunks of one upload
are written one at a time, under a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

from cocalc_k8s.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
)
from cocalc_k8s.core.projectfs import ProjectFS, split_path

log = logging.getLogger(__name__)

EXPIRE_SECONDS = 24 * 3600
COMPLETED_KEEP_SECONDS = 3600
SWEEP_INTERVAL = 600.0
WRITE_BUFFER = 1 << 20  # bytes gathered before one write in a worker thread
_ID = re.compile(r"^[0-9a-f]{32}$")


class UploadState(TypedDict):
    upload_id: str
    path: str
    size: int
    offset: int
    complete: bool


class OffsetMismatch(Conflict):
    """A chunk does not start where the upload stands; `expected` is where it does."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"the upload continues at offset {expected}")
        self.expected = expected


class DigestMismatch(Unprocessable):
    """A chunk's bytes do not match the SHA-256 its sender gave: nothing of it was kept,
    and sending it again is the cure."""

    def __init__(self) -> None:
        super().__init__("the chunk arrived damaged (its SHA-256 differs); send it again")


class Uploads:
    def __init__(
        self,
        staging_root: Path,
        fs: Callable[[uuid.UUID], Awaitable[ProjectFS]],
        *,
        max_file_bytes: int,
    ) -> None:
        self.root = staging_root
        self._fs = fs
        self.max_file_bytes = max_file_bytes
        self._locks: dict[str, asyncio.Lock] = {}
        self._swept = 0.0

    async def create(
        self,
        project_id: uuid.UUID,
        account_id: uuid.UUID,
        *,
        path: Any,
        size: Any,
        quota_bytes: int,
        used: int | None = None,
    ) -> UploadState:
        """Check the target and the space (`used`: the home's usage, when the caller knows
        it), then stage an empty upload."""
        if not isinstance(path, str) or not split_path(path):
            raise BadRequest("path must name a file inside the project")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest("size must be a whole number of bytes")
        if size > self.max_file_bytes:
            raise PayloadTooLarge(
                f"the file is larger than the limit of {self.max_file_bytes} bytes"
            )
        await self.sweep()
        fs = await self._fs(project_id)
        await asyncio.to_thread(fs.check_target, path)
        if used is None:
            used = await asyncio.to_thread(fs.disk_usage)
        reserved = sum(u["size"] for u in await self._all(project_id) if not u["complete"])
        free = quota_bytes - used - reserved
        if size > free:
            raise PayloadTooLarge(_no_space(size, quota_bytes, used, reserved))
        upload_id = uuid.uuid4().hex
        meta = {"account_id": str(account_id), "path": path, "size": size, "complete": False}
        await asyncio.to_thread(self._stage, project_id, upload_id, meta)
        return {"upload_id": upload_id, "path": path, "size": size, "offset": 0, "complete": False}

    async def status(
        self, project_id: uuid.UUID, account_id: uuid.UUID, upload_id: str
    ) -> UploadState:
        return await asyncio.to_thread(self._load, project_id, account_id, upload_id)

    async def pending(self, project_id: uuid.UUID, account_id: uuid.UUID) -> list[UploadState]:
        """This account's unfinished uploads in the project."""
        return [u for u in await self._all(project_id, account_id) if not u["complete"]]

    async def write(
        self,
        project_id: uuid.UUID,
        account_id: uuid.UUID,
        upload_id: str,
        *,
        offset: int,
        length: int | None,
        chunks: AsyncIterable[bytes],
        sha256: bytes | None = None,
    ) -> tuple[UploadState, bool]:
        """Append a chunk that starts at `offset`; at its last byte the upload completes.
        With `sha256` (of the whole chunk as sent) the chunk is kept whole or not at all:
        a broken stream or other bytes leave the upload where it was. Returns the new
        state and whether this call completed it."""
        async with self._lock(upload_id):
            state = await self.status(project_id, account_id, upload_id)
            if offset > state["offset"]:
                raise OffsetMismatch(state["offset"])
            if length is not None and offset + length > state["size"]:
                raise BadRequest(f"the chunk ends past the upload's size of {state['size']} bytes")
            if state["complete"]:
                return state, False
            part = self._dir(project_id) / f"{upload_id}.part"
            skip, room = state["offset"] - offset, state["size"] - state["offset"]
            state["offset"] += await _append(part, chunks, skip=skip, room=room, sha256=sha256)
            if state["offset"] < state["size"]:
                return state, False
            await self._complete(project_id, upload_id, state)
            return state, True

    async def abort(self, project_id: uuid.UUID, account_id: uuid.UUID, upload_id: str) -> None:
        async with self._lock(upload_id):
            await self.status(project_id, account_id, upload_id)
            await asyncio.to_thread(self._remove, project_id, upload_id)
        self._locks.pop(upload_id, None)

    async def sweep(self, *, now: float | None = None, force: bool = False) -> int:
        """Delete expired uploads of every project (at most every `SWEEP_INTERVAL`)."""
        now = time.time() if now is None else now
        if not force and now - self._swept < SWEEP_INTERVAL:
            return 0
        self._swept = now
        return await asyncio.to_thread(self._sweep, now)

    async def sweep_forever(self) -> None:
        """Delete expired uploads now and every `SWEEP_INTERVAL`, for as long as the hub
        runs (so abandoned uploads go even when nobody uploads again)."""
        while True:
            try:
                await self.sweep(force=True)
            except OSError:
                log.exception("sweeping expired uploads failed; trying again later")
            await asyncio.sleep(SWEEP_INTERVAL)

    # -- staging, blocking --------------------------------------------------------

    def _dir(self, project_id: uuid.UUID) -> Path:
        return self.root / str(project_id)

    def _stage(self, project_id: uuid.UUID, upload_id: str, meta: dict[str, Any]) -> None:
        directory = self._dir(project_id)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / f"{upload_id}.part").touch(mode=0o600, exist_ok=False)
        _write_meta(directory / f"{upload_id}.json", meta)

    def _load(self, project_id: uuid.UUID, account_id: uuid.UUID, upload_id: str) -> UploadState:
        if not _ID.match(upload_id):
            raise NotFound("no such upload")
        state = _read(self._dir(project_id), upload_id, time.time())
        if state is None or state["account_id"] != str(account_id):
            raise NotFound("no such upload (finished, cancelled or expired)")
        return _public(state)

    async def _all(
        self, project_id: uuid.UUID, account_id: uuid.UUID | None = None
    ) -> list[UploadState]:
        def scan() -> list[dict[str, Any]]:
            directory, now = self._dir(project_id), time.time()
            names = os.listdir(directory) if directory.is_dir() else []
            found = (_read(directory, n[:-5], now) for n in names if n.endswith(".json"))
            return [s for s in found if s is not None]

        states = await asyncio.to_thread(scan)
        return [
            _public(s) for s in states if account_id is None or s["account_id"] == str(account_id)
        ]

    async def _complete(self, project_id: uuid.UUID, upload_id: str, state: UploadState) -> None:
        fs = await self._fs(project_id)
        directory = self._dir(project_id)

        def install() -> None:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fs.install(state["path"], fd, f"{upload_id}.part")
            finally:
                os.close(fd)
            meta_path = directory / f"{upload_id}.json"
            meta = json.loads(meta_path.read_text())
            _write_meta(meta_path, meta | {"complete": True})

        await asyncio.to_thread(install)
        state["complete"] = True

    def _remove(self, project_id: uuid.UUID, upload_id: str) -> None:
        for suffix in (".part", ".json"):
            (self._dir(project_id) / f"{upload_id}{suffix}").unlink(missing_ok=True)

    def _sweep(self, now: float) -> int:
        removed = 0
        for directory in self.root.iterdir() if self.root.is_dir() else []:
            for name in os.listdir(directory):
                upload_id = name.split(".", 1)[0]
                if name.endswith(".json") and _read(directory, upload_id, now) is None:
                    for suffix in (".part", ".json"):
                        (directory / f"{upload_id}{suffix}").unlink(missing_ok=True)
                    self._locks.pop(upload_id, None)
                    removed += 1
        return removed

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())


def _read(directory: Path, upload_id: str, now: float) -> dict[str, Any] | None:
    """An upload's state (with its account_id), or None when missing or expired."""
    try:
        meta = json.loads((directory / f"{upload_id}.json").read_text())
        meta_time = (directory / f"{upload_id}.json").stat().st_mtime
        if meta["complete"]:
            offset, touched, keep = meta["size"], meta_time, COMPLETED_KEEP_SECONDS
        else:
            part = (directory / f"{upload_id}.part").stat()
            offset, touched, keep = part.st_size, max(part.st_mtime, meta_time), EXPIRE_SECONDS
    except (OSError, ValueError, KeyError):
        return None
    if now - touched > keep:
        return None
    return {
        "upload_id": upload_id,
        "path": meta["path"],
        "size": meta["size"],
        "offset": offset,
        "complete": meta["complete"],
        "account_id": meta["account_id"],
    }


def _public(state: dict[str, Any]) -> UploadState:
    return {
        "upload_id": state["upload_id"],
        "path": state["path"],
        "size": state["size"],
        "offset": state["offset"],
        "complete": state["complete"],
    }


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(meta))
    os.replace(temp, path)


async def _append(
    part: Path,
    chunks: AsyncIterable[bytes],
    *,
    skip: int,
    room: int,
    sha256: bytes | None = None,
) -> int:
    """Append `chunks` to `part`, dropping the first `skip` bytes; at most `room` bytes.
    Returns how many bytes were appended. Without `sha256` what arrived stays even if the
    stream then breaks; with it, the chunk is checked and cut off again unless whole and
    equal (hashing runs in the worker thread, with the writes)."""
    fd = await asyncio.to_thread(os.open, part, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    hasher = hashlib.sha256() if sha256 is not None else None
    start = await asyncio.to_thread(lambda: os.fstat(fd).st_size)
    received = written = 0
    pending = bytearray()

    async def flush() -> None:
        nonlocal skip, written
        data = bytes(pending)
        pending.clear()
        dropped = min(skip, len(data))
        skip -= dropped
        written += await asyncio.to_thread(_hash_and_write, hasher, fd, data, dropped)

    try:
        skipped = skip
        async for chunk in chunks:
            received += len(chunk)
            if received - skipped > room:
                raise BadRequest("the chunk ends past the upload's size")
            pending += chunk
            if len(pending) >= WRITE_BUFFER:
                await flush()
        await flush()
        if hasher is not None and hasher.digest() != sha256:
            raise DigestMismatch()
    except BaseException:
        if hasher is not None:  # all or nothing
            await asyncio.to_thread(os.ftruncate, fd, start)
            written = 0
        elif pending:
            with contextlib.suppress(OSError):
                await flush()
        raise
    finally:
        await asyncio.to_thread(os.close, fd)
    return written


def _hash_and_write(hasher: Any, fd: int, data: bytes, dropped: int) -> int:
    if hasher is not None:
        hasher.update(data)  # releases the GIL for large buffers
    return _write_all(fd, data[dropped:])


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _no_space(size: int, quota: int, used: int, reserved: int) -> str:
    mib = 1024 * 1024
    message = (
        f"not enough space in the project: the file needs {size / mib:.1f} MiB, "
        f"{max(0, quota - used - reserved) / mib:.1f} MiB of the {quota / mib:.0f} MiB "
        f"disk quota are free"
    )
    if reserved:
        message += f" ({reserved / mib:.1f} MiB are held by unfinished uploads)"
    return message
