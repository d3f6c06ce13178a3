"""One open document in memory: its pycrdt Doc, and the one loop that changes it.

Durability first: `submit` queues an update, and the document's commit loop hands every
update queued during one event-loop tick to the hub's group commit (one transaction for
all documents' updates of a tick, see commits.py), then applies them to the Doc and tells
the listeners (who forward them): nobody sees an update a crash could take back. The
same loop applies the updates other hubs committed (`behind`, from NOTIFY), in sequence
order, so the Doc holds exactly the updates 1..`seq` of its epoch.

When the store says the epoch moved on (another hub rebuilt the document), pending
updates fail with StaleEpoch, the Doc is reloaded and listeners get `resync`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pycrdt
from pycrdt import Doc, Text

from cocalc_k8s.services.documents.commits import GroupCommit
from cocalc_k8s.services.documents.store import DocumentStore, Entry, StaleEpoch, Stored

log = logging.getLogger(__name__)

TEXT = "text"  # the name of the document's Y.Text (docs/realtime.md)


class BadUpdate(ValueError):
    """Bytes that are not a Yjs update."""


@dataclass(frozen=True, slots=True)
class Change:
    """A committed update, as applied: `origin` is whoever submitted it on this hub
    (None: another hub, or the hub itself); `author` its account (None: the hub's own,
    or not known here: another hub's, source "hub")."""

    update: bytes
    seq: int
    epoch: int
    source: str
    origin: object | None
    author: uuid.UUID | None = None


Listener = Callable[[Change], Awaitable[None]]
ResyncListener = Callable[[int], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    entry: Entry
    origin: object | None
    done: asyncio.Future[int]


class LiveDocument:
    def __init__(
        self,
        store: DocumentStore,
        stored: Stored,
        *,
        commits: GroupCommit,
        project_id: uuid.UUID,
        path: str,
    ) -> None:
        self.store = store
        self.commits = commits
        self.id = stored.id
        self.project_id = project_id
        self.path = path
        self.listeners: list[Listener] = []
        self.resync_listeners: list[ResyncListener] = []
        self.clients = 0
        self._pending: list[_Pending] = []
        self._target = 0  # the highest seq another hub is known to have committed
        self._loop_task: asyncio.Task[None] | None = None
        self._scheduled = False
        self._load(stored)

    def _load(self, stored: Stored) -> None:
        self.doc: Doc[Text] = Doc()
        self.text: Text = self.doc.get(TEXT, type=Text)
        for data in stored.updates:
            self.doc.apply_update(data)
        self.epoch = stored.epoch
        self.seq = stored.seq
        self.checkpoint_seq = stored.seq if stored.updates else 0
        self.checkpoint_time = time.monotonic()

    # -- reading ------------------------------------------------------------------

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def missing(self, state_vector: bytes | None) -> bytes:
        """What a peer with `state_vector` lacks (everything for None)."""
        if state_vector is None:
            return self.doc.get_update()
        try:
            return self.doc.get_update(state_vector)
        except ValueError as exc:
            raise BadUpdate("not a Yjs state vector") from exc

    # -- changing -----------------------------------------------------------------

    async def submit(
        self,
        update: bytes,
        *,
        epoch: int,
        account_id: uuid.UUID | None,
        source: str = "client",
        origin: object | None = None,
    ) -> int:
        """Commit an update, then apply and forward it; returns its seq. Raises
        BadUpdate, StaleEpoch, or the database's error (nothing was committed)."""
        if epoch != self.epoch:
            raise StaleEpoch(self.epoch)
        try:
            pycrdt.get_state(update)  # decodes it: garbage is refused before any commit
        except ValueError as exc:
            raise BadUpdate("not a Yjs update") from exc
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(Entry(update, account_id, source), origin, done))
        self._wake()
        return await done

    def behind(self, epoch: int, seq: int) -> None:
        """Another hub committed up to `seq` (NOTIFY): apply what this one lacks."""
        if epoch != self.epoch or seq > self.seq:
            self._target = max(self._target, seq) if epoch == self.epoch else -1
            self._wake()

    def _wake(self) -> None:
        # One flush per tick: every submit of this tick joins the same transaction.
        if self._loop_task is None and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._pending or self._target > self.seq or self._target < 0:
                if self._target < 0:
                    await self._reload()
                elif self._pending:
                    await self._flush()
                else:
                    await self._catch_up(None)
        except Exception:
            log.exception("document %s: commit loop failed", self.id)
            await asyncio.sleep(0.5)  # the database is down: no busy retry
        finally:
            self._loop_task = None
            if self._pending or self._target > self.seq:
                self._wake()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            last = await self.commits.append(self.id, self.epoch, [p.entry for p in batch])
        except StaleEpoch as exc:
            for p in batch:
                p.done.set_exception(exc)
            await self._reload()
            return
        except Exception as exc:
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(exc)
            return
        first = last - len(batch) + 1
        if first > self.seq + 1:  # another hub's updates committed in between
            await self._catch_up(first - 1)
        for i, p in enumerate(batch):
            seq = first + i
            self.doc.apply_update(p.entry.data)
            self.seq = seq
            entry = p.entry
            await self._tell(
                Change(entry.data, seq, self.epoch, entry.source, p.origin, entry.account_id)
            )
            if not p.done.done():
                p.done.set_result(seq)

    async def _catch_up(self, upto: int | None) -> None:
        rows = await self.store.updates_after(self.id, self.epoch, self.seq, upto=upto)
        for seq, data in rows:
            self.doc.apply_update(data)
            self.seq = seq
            await self._tell(Change(data, seq, self.epoch, "hub", None))
        if upto is None and not rows:
            self._target = self.seq  # nothing newer (a NOTIFY of a rolled-back epoch)

    async def _reload(self) -> None:
        self._load(await self.store.load(self.id))
        self._target = self.seq
        for listener in list(self.resync_listeners):
            await listener(self.epoch)

    async def _tell(self, change: Change) -> None:
        for listener in list(self.listeners):
            try:
                await listener(change)
            except Exception:
                log.exception("document %s: a listener failed", self.id)

    async def idle(self) -> None:
        """Wait until nothing is queued or being committed."""
        while self._loop_task is not None or self._scheduled or self._pending:
            if self._loop_task is not None:
                await asyncio.wait([self._loop_task])
            else:
                await asyncio.sleep(0)
