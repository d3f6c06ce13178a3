"""TimeTravel's tables: one history per file (it follows renames and outlives deletion),
its versions numbered 1, 2, ... (migration 0010).

A version is stored whole every `SNAPSHOT_EVERY` versions (and whenever its delta would
not be smaller), otherwise as a delta from the version before (`delta`), so reading any
version replays at most `SNAPSHOT_EVERY - 1` deltas. A version whose text is the newest
version's (same SHA-256) is not recorded again. Appends to a history lock its row, so
two hubs recording the same change store it once.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cocalc_k8s.core.errors import NotFound
from cocalc_k8s.db.models import Account, DocumentUpdate, FileHistory, FileVersion
from cocalc_k8s.services.history.delta import apply_delta, pack_delta, pack_text, unpack_text

SNAPSHOT_EVERY = 50
CACHED_CHARS = 32 * 1024**2  # texts of newest versions kept in memory, to diff the next


@dataclass(frozen=True, slots=True)
class History:
    id: uuid.UUID
    path: str
    deleted: datetime | None
    last_version: int


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    time: datetime
    kind: str
    authors: list[uuid.UUID]
    size: int
    restored_from: int | None


@dataclass(frozen=True, slots=True)
class VersionRow:
    """What a new version's row says besides its text."""

    kind: str
    authors: list[uuid.UUID]
    size: int
    hash: bytes
    restored_from: int | None


# The next version of a history whose newest version this hub knows, in one round trip:
# the history's row is bumped only if that version is still its newest (and the text is
# new), which also locks it, so two hubs appending at once cannot both succeed.
_APPEND_TO_KNOWN = text("""
WITH bumped AS (
    UPDATE file_histories SET last_version = last_version + 1, last_hash = :hash
    WHERE id = :id AND project_id = :project_id AND path = :path AND deleted IS NULL
      AND last_version = :last AND last_hash IS DISTINCT FROM :hash
    RETURNING id, last_version
)
INSERT INTO file_versions (history_id, version, kind, authors, size, hash, base, data,
                           restored_from)
SELECT id, last_version, CAST(:kind AS varchar), CAST(:authors AS uuid[]),
       CAST(:size AS bigint), :hash, CAST(:base AS integer), :data,
       CAST(:restored_from AS integer)
FROM bumped
RETURNING version
""")


def _pack(previous: str | None, last_version: int, text: str) -> tuple[bytes, int | None]:
    """(data, base) of the version after `last_version`: a delta from `previous` (its
    text), unless there is none or the delta is no smaller than the whole text."""
    if previous is None:
        return pack_text(text), None
    packed = pack_delta(previous, text)
    if len(packed) > 4096 and len(packed) >= len(whole := pack_text(text)):
        return whole, None
    return packed, last_version


def live(project_id: uuid.UUID, path: str) -> Any:
    return and_(
        FileHistory.project_id == project_id,
        FileHistory.path == path,
        FileHistory.deleted.is_(None),
    )


def at_or_under(path: str) -> Any:
    return (FileHistory.path == path) | func.starts_with(FileHistory.path, path + "/")


class HistoryStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # The newest version's text of recently recorded histories, and the (project,
        # path) each was recorded at: the next version's delta needs no read.
        self._texts: OrderedDict[uuid.UUID, tuple[int, str, tuple[uuid.UUID, str]]] = OrderedDict()
        self._ids: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        self._cached_chars = 0

    # -- finding ----------------------------------------------------------------------

    async def find(self, project_id: uuid.UUID, path: str) -> History | None:
        """The file's history: the live one, else the most recently deleted."""
        query = (
            select(FileHistory.id, FileHistory.path, FileHistory.deleted, FileHistory.last_version)
            .where(FileHistory.project_id == project_id, FileHistory.path == path)
            .order_by(FileHistory.deleted.desc().nulls_first())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return History(row.id, row.path, row.deleted, row.last_version) if row else None

    async def last_hash(self, project_id: uuid.UUID, path: str) -> bytes | None:
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(FileHistory.last_hash).where(live(project_id, path)))
        return bytes(found) if found is not None else None

    # -- recording --------------------------------------------------------------------

    async def record(
        self,
        project_id: uuid.UUID,
        path: str,
        text: str,
        *,
        authors: list[uuid.UUID],
        kind: str,
        restored_from: int | None = None,
        always: bool = False,
    ) -> int | None:
        """Append `text` as the file's next version; None when it is the newest already
        (unless `always`: a deleted file brought back is a version even so)."""
        data = text.encode()
        digest = hashlib.sha256(data).digest()
        version = VersionRow(kind, sorted(set(authors)), len(data), digest, restored_from)
        if not always:
            appended = await self._append_to_known(project_id, path, text, version)
            if appended is not None:
                return appended
        async with self.engine.begin() as conn:
            await conn.execute(
                pg_insert(FileHistory)
                .values(id=uuid.uuid4(), project_id=project_id, path=path)
                .on_conflict_do_nothing(
                    index_elements=["project_id", "path"],
                    index_where=FileHistory.deleted.is_(None),
                )
            )
            row = (
                await conn.execute(
                    select(FileHistory.id, FileHistory.last_version, FileHistory.last_hash)
                    .where(live(project_id, path))
                    .with_for_update()
                )
            ).one()
            if not always and row.last_hash is not None and bytes(row.last_hash) == digest:
                return None
            number = row.last_version + 1
            previous = None
            if row.last_version and (number - 1) % SNAPSHOT_EVERY:
                previous = await self._text(conn, row.id, row.last_version)
            packed, base = await asyncio.to_thread(_pack, previous, row.last_version, text)
            await conn.execute(
                insert(FileVersion).values(
                    history_id=row.id,
                    version=number,
                    kind=kind,
                    authors=version.authors,
                    size=version.size,
                    hash=digest,
                    base=base,
                    data=packed,
                    restored_from=restored_from,
                )
            )
            await conn.execute(
                update(FileHistory)
                .where(FileHistory.id == row.id)
                .values(last_version=number, last_hash=digest)
            )
        self._remember(row.id, number, text, (project_id, path))
        return int(number)

    async def _append_to_known(
        self, project_id: uuid.UUID, path: str, text: str, version: VersionRow
    ) -> int | None:
        """The common case in one statement: the file's history and newest text are known
        here (this hub recorded it) and still newest. None: not known, or no longer
        newest, or the same text (`record` then takes the general way, which knows)."""
        key = (project_id, path)
        history_id = self._ids.get(key)
        cached = self._texts.get(history_id) if history_id is not None else None
        if history_id is None or cached is None:
            return None
        last, previous, _ = cached
        if previous == text:
            return None
        number = last + 1
        packed, base = await asyncio.to_thread(
            _pack, previous if (number - 1) % SNAPSHOT_EVERY else None, last, text
        )
        async with self.engine.begin() as conn:
            appended = await conn.scalar(_APPEND_TO_KNOWN, {
                "id": history_id, "project_id": project_id, "path": path, "last": last,
                "kind": version.kind, "authors": version.authors, "size": version.size,
                "hash": version.hash, "base": base, "data": packed,
                "restored_from": version.restored_from,
            })  # fmt: skip
        if appended is None:
            return None
        self._remember(history_id, number, text, key)
        return number

    # -- reading ----------------------------------------------------------------------

    async def versions(
        self, history_id: uuid.UUID, *, before: int | None, limit: int
    ) -> tuple[list[VersionInfo], bool]:
        """Newest first, `limit` of them older than `before`; and whether there are more."""
        query = select(
            FileVersion.version,
            FileVersion.time,
            FileVersion.kind,
            FileVersion.authors,
            FileVersion.size,
            FileVersion.restored_from,
        ).where(FileVersion.history_id == history_id)
        if before is not None:
            query = query.where(FileVersion.version < before)
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(query.order_by(FileVersion.version.desc()).limit(limit + 1))
            ).all()
        found = [
            VersionInfo(r.version, r.time, r.kind, list(r.authors), r.size, r.restored_from)
            for r in rows[:limit]
        ]
        return found, len(rows) > limit

    async def text(self, history_id: uuid.UUID, version: int) -> str:
        async with self.engine.connect() as conn:
            return await self._text(conn, history_id, version)

    async def _text(self, conn: AsyncConnection, history_id: uuid.UUID, version: int) -> str:
        cached = self._texts.get(history_id)
        if cached is not None and cached[0] == version:
            self._texts.move_to_end(history_id)
            return cached[1]
        start = (
            select(func.max(FileVersion.version))
            .where(
                FileVersion.history_id == history_id,
                FileVersion.version <= version,
                FileVersion.base.is_(None),
            )
            .scalar_subquery()
        )
        rows = (
            await conn.execute(
                select(FileVersion.version, FileVersion.base, FileVersion.data)
                .where(
                    FileVersion.history_id == history_id,
                    FileVersion.version <= version,
                    FileVersion.version >= start,
                )
                .order_by(FileVersion.version)
            )
        ).all()
        if not rows or rows[-1].version != version:
            raise NotFound(f"no version {version} of this file")
        chain = [(r.base, bytes(r.data)) for r in rows]
        return await asyncio.to_thread(_replay, chain)

    def forget_texts(self) -> None:
        """Drop the cached newest texts (they are only a shortcut)."""
        self._texts.clear()
        self._ids.clear()
        self._cached_chars = 0

    def _remember(
        self, history_id: uuid.UUID, version: int, text: str, key: tuple[uuid.UUID, str]
    ) -> None:
        old = self._texts.pop(history_id, None)
        if old is not None and old[2] != key:  # renamed since
            self._ids.pop(old[2], None)
        self._cached_chars += len(text) - (len(old[1]) if old else 0)
        self._texts[history_id] = (version, text, key)
        self._ids[key] = history_id
        while self._cached_chars > CACHED_CHARS and len(self._texts) > 1:
            _, (_, dropped, dropped_key) = self._texts.popitem(last=False)
            self._ids.pop(dropped_key, None)
            self._cached_chars -= len(dropped)

    async def names(self, account_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not account_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(Account.account_id, Account.name).where(Account.account_id.in_(account_ids))
            )
            return {r.account_id: r.name for r in rows}

    async def document_authors(
        self, document_id: uuid.UUID, epoch: int, after: int, upto: int
    ) -> list[uuid.UUID]:
        """Who wrote the document's updates `after` < seq <= `upto` (an edit version)."""
        async with self.engine.connect() as conn:
            found = await conn.scalars(
                select(DocumentUpdate.account_id)
                .where(
                    DocumentUpdate.document_id == document_id,
                    DocumentUpdate.epoch == epoch,
                    DocumentUpdate.seq > after,
                    DocumentUpdate.seq <= upto,
                    DocumentUpdate.account_id.is_not(None),
                )
                .distinct()
            )
            return [a for a in found if a is not None]

    # -- renames and deletions ------------------------------------------------------------

    async def renamed(self, project_id: uuid.UUID, src: str, dst: str) -> None:
        """`src` (a file, or a folder and everything under it) is now `dst`. A live
        history already at a destination path is marked deleted (it was replaced)."""
        async with self.engine.begin() as conn:
            moving = (
                await conn.execute(
                    select(FileHistory.id, FileHistory.path)
                    .where(
                        FileHistory.project_id == project_id,
                        FileHistory.deleted.is_(None),
                        at_or_under(src),
                    )
                    .with_for_update()
                )
            ).all()
            ids = [r.id for r in moving]
            for row in moving:
                target = dst + row.path[len(src) :]
                await conn.execute(
                    update(FileHistory)
                    .where(live(project_id, target), FileHistory.id.not_in(ids))
                    .values(deleted=func.now())
                )
            for row in moving:
                await conn.execute(
                    update(FileHistory)
                    .where(FileHistory.id == row.id)
                    .values(path=dst + row.path[len(src) :])
                )

    async def mark_deleted(self, project_id: uuid.UUID, paths: list[str]) -> None:
        """These files (or folders: everything under them) no longer exist."""
        if not paths:
            return
        condition = at_or_under(paths[0])
        for path in paths[1:]:
            condition = condition | at_or_under(path)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(FileHistory)
                .where(
                    FileHistory.project_id == project_id,
                    FileHistory.deleted.is_(None),
                    condition,
                )
                .values(deleted=func.now())
            )

    async def undelete(self, project_id: uuid.UUID, path: str) -> None:
        """The file is back: its most recently deleted history is live again (unless
        another history of that path already is)."""
        async with self.engine.begin() as conn:
            if await conn.scalar(select(FileHistory.id).where(live(project_id, path))):
                return
            newest = (
                select(FileHistory.id)
                .where(FileHistory.project_id == project_id, FileHistory.path == path)
                .order_by(FileHistory.deleted.desc())
                .limit(1)
                .scalar_subquery()
            )
            await conn.execute(
                update(FileHistory).where(FileHistory.id == newest).values(deleted=None)
            )

    async def deleted_in(self, project_id: uuid.UUID, folder: str) -> list[dict[str, Any]]:
        """Deleted files at or under `folder` ("" the home) with no live history."""
        h = FileHistory.__table__.alias("h")
        other = FileHistory.__table__.alias("other")
        condition = h.c.project_id == project_id
        if folder:
            condition = condition & func.starts_with(h.c.path, folder + "/")
        recreated = (
            select(other.c.id)
            .where(
                other.c.project_id == h.c.project_id,
                other.c.path == h.c.path,
                other.c.deleted.is_(None),
            )
            .exists()
        )
        query = (
            select(h.c.path, h.c.deleted, h.c.last_version, FileVersion.size)
            .join(
                FileVersion,
                and_(FileVersion.history_id == h.c.id, FileVersion.version == h.c.last_version),
            )
            .where(condition, h.c.deleted.is_not(None), ~recreated)
            .order_by(h.c.path, h.c.deleted.desc())
            .limit(5000)
        )
        found: dict[str, dict[str, Any]] = {}
        async with self.engine.connect() as conn:
            for r in await conn.execute(query):
                found.setdefault(  # a path deleted several times: its newest history
                    r.path,
                    {
                        "path": r.path,
                        "deleted": r.deleted.isoformat(),
                        "version": r.last_version,
                        "size": r.size,
                    },
                )
        return list(found.values())


def _replay(chain: list[tuple[int | None, bytes]]) -> str:
    text = ""
    for base, data in chain:
        text = unpack_text(data) if base is None else apply_delta(text, data)
    return text
