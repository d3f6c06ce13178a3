"""Group commit: one transaction for the updates of every document queued in one tick.

A transaction per document per tick saturates PostgreSQL at a few hundred updates a
second (each is a round of statements and a flush of the WAL); typing is many documents
with one or two updates each per tick. So every open document hands its batch to the
one `GroupCommit` of the hub, which commits all batches queued during an event-loop tick
in one transaction (`DocumentStore.append_many`: one statement); while that commits, the
next tick's batches make the next round (up to IN_FLIGHT rounds at once; beyond that
they gather until one ends), each on a connection of the group commit's own (psycopg,
autocommit, outside SQLAlchemy's pool; a broken one is dropped and the next round
connects anew). Callers learn their seqs only after the commit: nobody
acknowledges or forwards an update a crash could take back.

Contract of `append`: the entries are committed as the document's next updates and the
seq of the last is returned; or StaleEpoch (the document's epoch moved on; nothing of
this batch was committed); or CommitFailed (the database failed: nothing of the round was
committed; the caller keeps the updates and the client sends them again). An outage is
logged once when it starts and once when commits work again, not per update.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from cocalc_k8s.services.documents.store import DocumentStore, Entry, StaleEpoch

# Rounds committing at once (on separate connections). One would serialise the hub on the
# database's latency; rounds in flight never share a document, so each document's order
# holds, and across hubs its row lock orders them.
IN_FLIGHT = 3

log = logging.getLogger(__name__)


class CommitFailed(Exception):
    """The database did not commit the round (down, restarting, unreachable)."""


@dataclass(slots=True)
class _Request:
    doc_id: uuid.UUID
    epoch: int
    entries: Sequence[Entry]
    done: asyncio.Future[int]


Connection = psycopg.AsyncConnection[tuple[Any, ...]]


class _Connections:
    """The group commit's connections: at most one per round in flight, kept idle
    between rounds; one that failed is closed, never reused."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._idle: list[Connection] = []

    async def take(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return await psycopg.AsyncConnection.connect(self.url, autocommit=True)

    def give_back(self, conn: Connection) -> None:
        if not conn.closed:
            self._idle.append(conn)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


class GroupCommit:
    def __init__(
        self, store: DocumentStore, database_url: str, *, in_flight: int = IN_FLIGHT
    ) -> None:
        self.store = store
        self.connections = _Connections(database_url)
        self.in_flight = in_flight
        self.rounds = 0  # transactions committed (or tried), for tests
        self._queue: list[_Request] = []
        self._busy: set[uuid.UUID] = set()  # documents in a round being committed
        self._running: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._failing = False  # the last round failed (an outage was logged)

    async def append(self, doc_id: uuid.UUID, epoch: int, entries: Sequence[Entry]) -> int:
        """Commit `entries` with the others of this round; see the module's contract."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(doc_id, epoch, entries, done))
        self._wake()
        return await done

    def _wake(self) -> None:
        # Started by call_soon: every append of this tick (and of the callbacks already
        # scheduled in it) joins the same round.
        if not self._scheduled and self._queue and len(self._running) < self.in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        by_doc = self._take_round()
        if not by_doc:
            return
        self._busy.update(by_doc)
        task = asyncio.get_running_loop().create_task(self._commit(by_doc))
        self._running.add(task)
        task.add_done_callback(lambda _: self._finished(task, by_doc))

    def _finished(self, task: asyncio.Task[None], by_doc: dict[uuid.UUID, list[_Request]]) -> None:
        self._running.discard(task)
        self._busy.difference_update(by_doc)
        self._wake()

    def _take_round(self) -> dict[uuid.UUID, list[_Request]]:
        """The queued batches that go together: one epoch per document (the store takes
        one), and no document that a round in flight holds, so a document's updates are
        committed in the order they were queued; the rest wait, in order."""
        by_doc: dict[uuid.UUID, list[_Request]] = {}
        later: list[_Request] = []
        waiting = set(self._busy)
        for request in self._queue:
            group = by_doc.get(request.doc_id)
            if request.doc_id in waiting or (group and group[0].epoch != request.epoch):
                waiting.add(request.doc_id)
                later.append(request)
            else:
                by_doc.setdefault(request.doc_id, []).append(request)
        self._queue = later
        return by_doc

    async def _commit(self, by_doc: dict[uuid.UUID, list[_Request]]) -> None:
        self.rounds += 1
        batches = {
            doc_id: (group[0].epoch, [e for r in group for e in r.entries])
            for doc_id, group in by_doc.items()
        }
        conn: Connection | None = None
        try:
            conn = await self.connections.take()
            results = await self.store.append_many(conn, batches)
            self.connections.give_back(conn)
        except asyncio.CancelledError:  # the hub is stopping
            for group in by_doc.values():
                for request in group:
                    request.done.cancel()
            if conn is not None:
                await conn.close()
            raise
        except Exception as exc:
            if conn is not None:
                await conn.close()
            if not self._failing:
                self._failing = True
                log.warning("documents: updates not committed (%s); clients will resend", exc)
            failed = CommitFailed(str(exc))
            for group in by_doc.values():
                for request in group:
                    _fail(request, failed)
            return
        if self._failing:
            self._failing = False
            log.info("documents: updates are committed again")
        for doc_id, group in by_doc.items():
            result = results[doc_id]
            if isinstance(result, StaleEpoch):
                for request in group:
                    _fail(request, result)
                continue
            seq = result - len(batches[doc_id][1])
            for request in group:
                seq += len(request.entries)
                if not request.done.done():
                    request.done.set_result(seq)

    async def close(self) -> None:
        """After the last round (the documents are flushed): close the connections."""
        await self.connections.close()


def _fail(request: _Request, exc: Exception) -> None:
    if not request.done.done():
        request.done.set_exception(exc)
