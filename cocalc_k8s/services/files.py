"""A project's files, read and written by the hub directly on the projects' storage.

Works whether the project runs or not. Every path goes through `ProjectFS`, which keeps it
inside the project's home (symlinks included); every blocking call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.projectfs import AtomicWrite, Entry, ProjectFS
from cocalc_k8s.services.file_events import FileEvents
from cocalc_k8s.services.uploads import Uploads

FILE_OPS = ("move", "copy", "mkdir")


class ProjectFiles:
    def __init__(self, projects_root: Path, *, max_file_bytes: int) -> None:
        self.projects_root = projects_root
        self.max_file_bytes = max_file_bytes
        # Staging beside the projects' root, never inside it (see services.uploads).
        self.uploads = Uploads(
            projects_root.parent / "uploads", self.fs, max_file_bytes=max_file_bytes
        )
        self.events = FileEvents()

    async def fs(self, project_id: uuid.UUID) -> ProjectFS:
        home = self.projects_root / str(project_id)
        owner = await asyncio.to_thread(_ensure_home, home)
        return ProjectFS(home, owner=owner)

    async def listing(self, project_id: uuid.UUID, path: str) -> list[Entry]:
        fs = await self.fs(project_id)
        return await asyncio.to_thread(fs.listing, path)

    async def open_read(self, project_id: uuid.UUID, path: str) -> tuple[BinaryIO, os.stat_result]:
        fs = await self.fs(project_id)
        handle = await asyncio.to_thread(fs.open_read, path)
        return handle, os.fstat(handle.fileno())

    async def begin_write(
        self, project_id: uuid.UUID, path: str, *, max_bytes: int | None = None
    ) -> AtomicWrite:
        """An atomic replacement of `path`, of at most `max_bytes` (default: the file
        size limit)."""
        fs = await self.fs(project_id)
        limit = self.max_file_bytes if max_bytes is None else min(max_bytes, self.max_file_bytes)
        return await asyncio.to_thread(fs.begin_write, path, max_bytes=limit)

    async def size(self, project_id: uuid.UUID, path: str) -> int:
        """Bytes `path` takes now (0 when missing), for the disk quota."""
        fs = await self.fs(project_id)
        return await asyncio.to_thread(fs.size, path)

    async def delete(self, project_id: uuid.UUID, path: str) -> None:
        fs = await self.fs(project_id)
        await asyncio.to_thread(fs.delete, path)

    async def open_dir(self, project_id: uuid.UUID, path: str) -> int:
        """A confined descriptor of a directory (for a zip of it); the caller closes it."""
        fs = await self.fs(project_id)
        return await asyncio.to_thread(fs.open_dir, path)

    async def operate(self, project_id: uuid.UUID, body: dict[str, Any]) -> FileOp:
        """`{"op": "move"|"copy", "src", "dst"}` or `{"op": "mkdir", "path"}`; returns
        what was done, for the project log."""
        op = body.get("op")
        if op not in FILE_OPS:
            raise BadRequest(f"op must be one of {', '.join(FILE_OPS)}")
        fs = await self.fs(project_id)
        if op == "mkdir":
            path = _path(body, "path")
            await asyncio.to_thread(fs.mkdir, path)
            return FileOp("file.created", path, None)
        src, dst = _path(body, "src"), _path(body, "dst")
        if op == "move":
            await asyncio.to_thread(fs.move, src, dst)
            return FileOp("file.moved", src, dst)
        await asyncio.to_thread(fs.copy, src, dst)
        return FileOp("file.copied", src, dst)


class FileOp(NamedTuple):
    kind: str  # the project log's event kind
    path: str
    to: str | None


def _path(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a path inside the project")
    return value


def _ensure_home(home: Path) -> tuple[int, int] | None:
    """Make the home if needed; the owner to give new files to when the hub is root and
    the project has a uid of its own (else None)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return None
    st = home.stat()
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else None
