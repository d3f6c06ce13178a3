"""A published item's files, read from the hub's own storage and confined to the item.

The item's folder is opened once through the home-confined walk of `ProjectFS` (so its
own path cannot lead out of the home), then a second `ProjectFS` is rooted at that open
directory (`/proc/self/fd/N`): every path inside is walked from it, and `..` past it, an
absolute symlink pointing elsewhere, or a relative one climbing out, are refused. So a
symlink in the published folder to the project's other files, another project or `/etc`
is unreachable, however the URL spells it. Names starting with a dot are refused too
(and hidden from listings): dotfiles are configuration and secrets far more often than
something meant to be published.

A published *file* is rooted at its folder, and only its own name is reachable.
Every error a reader could provoke is NotFound: the page says nothing of what exists.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cocalc_k8s.core.errors import BadRequest, DomainError, NotFound
from cocalc_k8s.core.projectfs import Entry, ProjectFS, split_path
from cocalc_k8s.services.files import ProjectFiles

NOT_FOUND = "no such file in this published item"
HEAD_BYTES = 8192


@dataclass
class Opened:
    """A file (`handle`, its `st` and first bytes) or a directory (`entries`)."""

    inner: str  # the path inside the item, normalised
    project_path: str  # the same, relative to the project's home
    handle: BinaryIO | None = None
    st: os.stat_result | None = None
    head: bytes = b""
    entries: list[Entry] | None = None


def clean_inner(raw: str) -> str:
    """The path inside an item as asked in a URL; NotFound for anything odd."""
    if raw.startswith("/") or "\\" in raw:
        raise NotFound(NOT_FOUND)
    try:
        parts = split_path(raw)
    except DomainError:
        raise NotFound(NOT_FOUND) from None
    if any(part == ".." or part.startswith(".") for part in parts):
        raise NotFound(NOT_FOUND)
    return "/".join(parts)


class PublishedFiles:
    def __init__(self, files: ProjectFiles) -> None:
        self.files = files

    async def kind_of_path(self, project_id: uuid.UUID, path: str) -> str:
        """ "dir" or "file" for a path a collaborator publishes; BadRequest when missing."""
        fs = await self.files.fs(project_id)
        return await asyncio.to_thread(_kind_of_path, fs, path)

    async def open(self, project_id: uuid.UUID, item_path: str, inner: str) -> Opened:
        fs = await self.files.fs(project_id)
        return await asyncio.to_thread(_open, fs, item_path, inner)

    async def open_folder(self, project_id: uuid.UUID, item_path: str, inner: str) -> int:
        """A descriptor of a folder inside a published folder (for its zip; the caller
        closes it); NotFound for a file, a published file, or anything out of reach."""
        fs = await self.files.fs(project_id)
        return await asyncio.to_thread(_open_folder, fs, item_path, inner)


def _kind_of_path(fs: ProjectFS, path: str) -> str:
    try:
        os.close(fs.open_dir(path))
        return "dir"
    except BadRequest:
        pass
    except NotFound:
        raise BadRequest(f"{path or 'the home directory'}: no such file or directory") from None
    try:
        fs.open_read(path).close()
    except NotFound:
        raise BadRequest(f"{path}: no such file or directory") from None
    return "file"


@contextmanager
def _rooted(fs: ProjectFS, item_path: str) -> Iterator[tuple[ProjectFS, str | None]]:
    """(a ProjectFS rooted at the item's folder, the item's file name or None)."""
    try:
        fd = fs.open_dir(item_path)
        only = None
    except BadRequest:  # a file: root at its folder, reach only its name
        parent, only = posixpath.split(item_path)
        fd = fs.open_dir(parent)
    try:
        yield ProjectFS(Path(f"/proc/self/fd/{fd}")), only
    finally:
        os.close(fd)


def _open(fs: ProjectFS, item_path: str, inner: str) -> Opened:
    try:
        with _rooted(fs, item_path) as (root, only):
            if only is not None:
                if inner not in ("", only):
                    raise NotFound(NOT_FOUND)
                inner = only
            try:
                handle = root.open_read(inner)
            except BadRequest:  # a directory (or not a regular file: listing says which)
                entries = [e for e in root.listing(inner) if not e["name"].startswith(".")]
                return Opened(inner, _join(item_path, inner), entries=entries)
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                handle.close()
                raise NotFound(NOT_FOUND)
            head = handle.read(HEAD_BYTES)
            handle.seek(0)
            where = item_path if only is not None else _join(item_path, inner)
            return Opened(inner, where, handle=handle, st=st, head=head)
    except DomainError:
        raise NotFound(NOT_FOUND) from None


def _open_folder(fs: ProjectFS, item_path: str, inner: str) -> int:
    try:
        with _rooted(fs, item_path) as (root, only):
            if only is not None:
                raise NotFound(NOT_FOUND)
            return root.open_dir(inner)
    except DomainError:  # BadRequest: not a directory
        raise NotFound(NOT_FOUND) from None


def _join(base: str, inner: str) -> str:
    return posixpath.join(base, inner) if base and inner else base or inner
