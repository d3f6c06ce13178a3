"""The documents' store in PostgreSQL: documents, their updates and checkpoints.

Updates of a document are numbered 1, 2, ... (`seq`) in commit order: `append` bumps the
document row's `seq` first, so concurrent appends (two hubs) serialise on that row and
every number below a committed one is committed too; a reader that has applied up to `n`
misses nothing by reading `seq > n`. Every append sends a NOTIFY on `cocalc_documents`
whose payload is a pointer (`<document id> <epoch> <seq>`), never the bytes; a group
commit sends one NOTIFY for its documents, their pointers comma-separated.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.db.models import Document, DocumentCheckpoint, DocumentUpdate
from cocalc_k8s.db.notify import notify

CHANNEL = "cocalc_documents"

_BATCH_COLUMNS = ("document_ids", "epochs", "ordinals", "account_ids", "sources", "datas")
# One statement for a whole group commit (autocommit: its own transaction). `locked`
# takes the documents' rows in id order, so two hubs committing groups that share
# documents queue behind each other instead of deadlocking; every later part reads the
# locked rows, so their seqs are the latest. A document whose epoch differs is not moved
# (its `seq` comes back NULL): nothing of it is inserted. In psycopg's own placeholders:
# it runs on the group commit's connections, not through SQLAlchemy (see append_many).
_APPEND_MANY = """
WITH batch AS (
    SELECT * FROM unnest(
        CAST(%(document_ids)s AS uuid[]), CAST(%(epochs)s AS integer[]),
        CAST(%(ordinals)s AS integer[]), CAST(%(account_ids)s AS uuid[]),
        CAST(%(sources)s AS text[]), CAST(%(datas)s AS bytea[])
    ) AS b (document_id, epoch, ordinal, account_id, source, data)
),
counts AS (
    SELECT document_id, epoch, count(*) AS n FROM batch GROUP BY document_id, epoch
),
locked AS MATERIALIZED (
    SELECT id, epoch, seq FROM documents
    WHERE id = ANY(CAST(%(ids)s AS uuid[])) ORDER BY id FOR UPDATE
),
moved AS (
    UPDATE documents AS d SET seq = l.seq + c.n, changed = now()
    FROM locked AS l JOIN counts AS c ON c.document_id = l.id AND c.epoch = l.epoch
    WHERE d.id = l.id
    RETURNING d.id, d.epoch, d.seq, c.n
),
inserted AS (
    INSERT INTO document_updates (document_id, seq, epoch, account_id, source, data)
    SELECT b.document_id, m.seq - m.n + b.ordinal, b.epoch, b.account_id, b.source, b.data
    FROM batch AS b JOIN moved AS m ON m.id = b.document_id
),
notified AS (
    SELECT pg_notify(%(channel)s, string_agg(p.pointer, ','))
    FROM (
        SELECT id::text || ' ' || epoch || ' ' || seq AS pointer,
               (row_number() OVER ()) / %(per_notification)s AS chunk
        FROM moved
    ) AS p
    GROUP BY p.chunk
)
SELECT l.id, l.epoch, m.seq, (SELECT count(*) FROM notified) AS notifications
FROM locked AS l LEFT JOIN moved AS m ON m.id = l.id
"""
# Pointers per notification: NOTIFY's payload is under 8,000 bytes; a pointer is ~50.
_PER_NOTIFICATION = 100


class StaleEpoch(Exception):
    """The document was rebuilt (a new epoch) since the caller loaded it."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"the document is now at epoch {epoch}")
        self.epoch = epoch


@dataclass(frozen=True, slots=True)
class Entry:
    """An update to append: its bytes, author (None: the hub itself) and source."""

    data: bytes
    account_id: uuid.UUID | None
    source: str  # client | disk | load


@dataclass(frozen=True, slots=True)
class Stored:
    """A document's state as stored: checkpoint and tail of its current epoch."""

    id: uuid.UUID
    epoch: int
    seq: int
    updates: list[bytes]  # the checkpoint (if any) first, then every later update
    disk_hash: bytes | None
    disk_seq: int


class DocumentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ensure(self, project_id: uuid.UUID, path: str) -> uuid.UUID:
        """The id of the document of a file, made on first use."""
        async with self.engine.begin() as conn:
            await conn.execute(
                pg_insert(Document)
                .values(id=uuid.uuid4(), project_id=project_id, path=path)
                .on_conflict_do_nothing(index_elements=["project_id", "path"])
            )
            found = await conn.scalar(
                select(Document.id).where(Document.project_id == project_id, Document.path == path)
            )
        assert found is not None
        return found

    async def load(self, doc_id: uuid.UUID) -> Stored:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        Document.epoch, Document.seq, Document.disk_hash, Document.disk_seq
                    ).where(Document.id == doc_id)
                )
            ).one()
            checkpoint = (
                await conn.execute(
                    select(DocumentCheckpoint.seq, DocumentCheckpoint.data)
                    .where(
                        DocumentCheckpoint.document_id == doc_id,
                        DocumentCheckpoint.epoch == row.epoch,
                    )
                    .order_by(DocumentCheckpoint.seq.desc())
                    .limit(1)
                )
            ).first()
            after = checkpoint.seq if checkpoint else 0
            tail = await conn.scalars(
                select(DocumentUpdate.data)
                .where(
                    DocumentUpdate.document_id == doc_id,
                    DocumentUpdate.epoch == row.epoch,
                    DocumentUpdate.seq > after,
                )
                .order_by(DocumentUpdate.seq)
            )
            updates = ([checkpoint.data] if checkpoint else []) + list(tail)
        return Stored(doc_id, row.epoch, row.seq, updates, row.disk_hash, row.disk_seq)

    async def append(
        self, doc_id: uuid.UUID, epoch: int, entries: list[Entry], *, if_seq: int | None = None
    ) -> int:
        """Commit the entries as the next updates (one transaction); returns the seq of
        the last. StaleEpoch when the document's epoch is not `epoch`; with `if_seq`,
        appends only if the document's seq is that (else StaleEpoch too)."""
        async with self.engine.begin() as conn:
            condition = and_(Document.id == doc_id, Document.epoch == epoch)
            if if_seq is not None:
                condition = and_(condition, Document.seq == if_seq)
            last = await conn.scalar(
                update(Document)
                .where(condition)
                .values(seq=Document.seq + len(entries), changed=func.now())
                .returning(Document.seq)
            )
            if last is None:
                current = await conn.scalar(select(Document.epoch).where(Document.id == doc_id))
                raise StaleEpoch(current or 0)
            first = last - len(entries) + 1
            await conn.execute(
                insert(DocumentUpdate),
                [
                    {
                        "document_id": doc_id,
                        "seq": first + i,
                        "epoch": epoch,
                        "account_id": e.account_id,
                        "source": e.source,
                        "data": e.data,
                    }
                    for i, e in enumerate(entries)
                ],
            )
            await notify(conn, CHANNEL, f"{doc_id} {epoch} {last}")
        return int(last)

    @staticmethod
    async def append_many(
        conn: psycopg.AsyncConnection[tuple[Any, ...]],
        batches: Mapping[uuid.UUID, tuple[int, Sequence[Entry]]],
    ) -> dict[uuid.UUID, int | StaleEpoch]:
        """Commit the entries of several documents ({doc id: (epoch, entries)}) as their
        next updates, in one statement (one round trip, one transaction); returns, per
        document, the seq of its last entry, or StaleEpoch when its epoch is not the one
        given (its entries are not appended; the others' are).

        On `conn`, an autocommit psycopg connection of the caller's (the group commit's):
        this runs a hundred times a second and more, and SQLAlchemy's layers around it
        (pool, greenlet, compiled cache) cost more CPU than the statement's own driver."""
        columns: dict[str, list[object]] = {name: [] for name in _BATCH_COLUMNS}
        for doc_id, (epoch, entries) in batches.items():
            for ordinal, e in enumerate(entries, start=1):
                for name, value in zip(
                    _BATCH_COLUMNS,
                    (doc_id, epoch, ordinal, e.account_id, e.source, e.data),
                    strict=True,
                ):
                    columns[name].append(value)
        params = {**columns, "ids": list(batches), "channel": CHANNEL,
                  "per_notification": _PER_NOTIFICATION}  # fmt: skip
        cursor = await conn.execute(_APPEND_MANY, params)
        results: dict[uuid.UUID, int | StaleEpoch] = dict.fromkeys(batches, StaleEpoch(0))
        for doc_id, epoch, seq, _ in await cursor.fetchall():
            results[doc_id] = int(seq) if seq is not None else StaleEpoch(epoch)
        return results

    async def updates_after(
        self, doc_id: uuid.UUID, epoch: int, seq: int, *, upto: int | None = None
    ) -> list[tuple[int, bytes]]:
        query = select(DocumentUpdate.seq, DocumentUpdate.data).where(
            DocumentUpdate.document_id == doc_id,
            DocumentUpdate.epoch == epoch,
            DocumentUpdate.seq > seq,
        )
        if upto is not None:
            query = query.where(DocumentUpdate.seq <= upto)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(DocumentUpdate.seq))
            return [(r.seq, r.data) for r in rows]

    async def state_at(self, doc_id: uuid.UUID, epoch: int, seq: int) -> list[bytes]:
        """The updates that make the document as it was at `seq` (newest checkpoint at
        or before it, then the updates up to it)."""
        async with self.engine.connect() as conn:
            checkpoint = (
                await conn.execute(
                    select(DocumentCheckpoint.seq, DocumentCheckpoint.data)
                    .where(
                        DocumentCheckpoint.document_id == doc_id,
                        DocumentCheckpoint.epoch == epoch,
                        DocumentCheckpoint.seq <= seq,
                    )
                    .order_by(DocumentCheckpoint.seq.desc())
                    .limit(1)
                )
            ).first()
        start = checkpoint.seq if checkpoint else 0
        tail = await self.updates_after(doc_id, epoch, start, upto=seq)
        return ([checkpoint.data] if checkpoint else []) + [data for _, data in tail]

    async def checkpoint(self, doc_id: uuid.UUID, epoch: int, seq: int, data: bytes) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                pg_insert(DocumentCheckpoint)
                .values(document_id=doc_id, seq=seq, epoch=epoch, data=data)
                .on_conflict_do_nothing()
            )

    async def rebuild(self, doc_id: uuid.UUID, entry: Entry) -> tuple[int, int]:
        """Start a new epoch whose first update is `entry` (the file's text); returns
        (epoch, seq). The old epochs' rows stay (history)."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    update(Document)
                    .where(Document.id == doc_id)
                    .values(epoch=Document.epoch + 1, seq=Document.seq + 1, changed=func.now())
                    .returning(Document.epoch, Document.seq)
                )
            ).one()
            await conn.execute(
                insert(DocumentUpdate).values(
                    document_id=doc_id,
                    seq=row.seq,
                    epoch=row.epoch,
                    account_id=None,
                    source=entry.source,
                    data=entry.data,
                )
            )
            await notify(conn, CHANNEL, f"{doc_id} {row.epoch} {row.seq}")
        return int(row.epoch), int(row.seq)

    async def set_disk(self, doc_id: uuid.UUID, disk_hash: bytes | None, seq: int) -> None:
        """Record what the file holds: the hash of the document's text at `seq`."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Document)
                .where(Document.id == doc_id)
                .values(disk_hash=disk_hash, disk_seq=seq)
            )
