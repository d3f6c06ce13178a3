"""Open documents: one `LiveDocument` per file in memory while anyone has it open.

`open` loads a document from its newest checkpoint plus the updates after it, or builds it
from the file (the text inserted by a fixed client id, so two builds of the same text are
the same update), or, when its stored state is gone, rebuilds it with a new epoch. Once
its last client has gone (`release`) it stays `grace` seconds, then its pending save is
flushed, a checkpoint written if due, its lease released, and it leaves memory.

A background loop, every `tick`, tries to become the writer of the open documents that
have none here (an advisory lock per document: the hub holding it saves the file and
merges its disk changes; a dead holder's lock is free at once) and writes their
checkpoints. Disk changes come from the hub's one file watcher (`services.watcher`): the
writer of a changed file merges it at once.

Others follow the documents through `on_open(callback)`: called with each document and
its `FileSync` once it is in memory (TimeTravel groups its updates into versions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pycrdt import Doc, Text
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.services.documents.commits import GroupCommit
from cocalc_k8s.services.documents.disk import FileSync
from cocalc_k8s.services.documents.filetext import read_text
from cocalc_k8s.services.documents.live import TEXT, LiveDocument
from cocalc_k8s.services.documents.locks import WriterLocks
from cocalc_k8s.services.documents.presence import PresenceExchange
from cocalc_k8s.services.documents.store import DocumentStore, Entry, StaleEpoch
from cocalc_k8s.services.documents.textdiff import update_to
from cocalc_k8s.services.files import ProjectFiles
from cocalc_k8s.services.watcher import FileChanges, FileWatcher

log = logging.getLogger(__name__)

LOAD_CLIENT_ID = 1  # every build from disk inserts the file's text as this Yjs client


@dataclass(frozen=True, slots=True)
class DocumentPolicy:
    max_bytes: int = 10 * 1024**2
    save_delay: float = 1.5  # seconds after the last change, a document is saved
    save_within: float = 5.0  # ... and at most this long after the first unsaved one
    grace: float = 5.0
    tick: float = 1.0  # the writer locks' period
    checkpoint_every: int = 500  # updates
    checkpoint_after: float = 60.0  # seconds with updates since the last checkpoint


@dataclass(slots=True)
class _Open:
    live: LiveDocument
    sync: FileSync
    closing: asyncio.TimerHandle | None = None


def clean_path(path: object) -> str:
    """A document's path relative to the home, in one spelling ("a/./b" is "a/b")."""
    if not isinstance(path, str) or not path.strip("/") or "\0" in path:
        raise BadRequest("path must name a file inside the project")
    norm = posixpath.normpath(path.lstrip("/"))
    if norm == "." or norm.startswith("../") or norm == "..":
        raise BadRequest("path must name a file inside the project")
    return norm


def text_update(text: str) -> bytes:
    doc: Doc[Text] = Doc(client_id=LOAD_CLIENT_ID)
    doc.get(TEXT, type=Text).insert(0, text)
    return doc.get_update()


class DocumentService:
    def __init__(
        self,
        engine: AsyncEngine,
        files: ProjectFiles,
        *,
        database_url: str,
        watcher: FileWatcher,
        policy: DocumentPolicy | None = None,
    ) -> None:
        self.store = DocumentStore(engine)
        self.commits = GroupCommit(self.store, database_url)
        self.presence = PresenceExchange(engine)
        self.watcher = watcher
        watcher.subscribe(self._files_changed)
        self.open_listeners: list[Callable[[LiveDocument, FileSync], Awaitable[None]]] = []
        self.locks = WriterLocks(database_url)
        self.files = files
        self.policy = policy or DocumentPolicy()
        self._open: dict[uuid.UUID, _Open] = {}
        self._by_path: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        self._loading: dict[tuple[uuid.UUID, str], asyncio.Future[LiveDocument]] = {}
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    # -- opening and closing --------------------------------------------------------

    async def open(self, project_id: uuid.UUID, path: str) -> LiveDocument:
        """The live document of a file, loaded if needed; the caller must `retain` it.
        Raises ReadOnly for a binary or over-size file."""
        key = (project_id, clean_path(path))
        doc_id = self._by_path.get(key)
        if doc_id is not None and doc_id in self._open:
            return self._open[doc_id].live
        pending = self._loading.get(key)
        if pending is None:
            pending = self._loading[key] = asyncio.ensure_future(self._load(*key))
            pending.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(pending)

    async def _load(self, project_id: uuid.UUID, path: str) -> LiveDocument:
        disk = await read_text(self.files, project_id, path, max_bytes=self.policy.max_bytes)
        doc_id = await self.store.ensure(project_id, path)
        stored = await self.store.load(doc_id)
        if not stored.updates:
            text = disk.text or ""
            if stored.seq == 0:  # first open: the document is the file
                if text:
                    with contextlib.suppress(StaleEpoch):  # another hub built it first
                        await self.store.append(
                            doc_id,
                            stored.epoch,
                            [Entry(text_update(text), None, "load")],
                            if_seq=0,
                        )
            else:  # its stored state is gone: rebuild, and make old clients resync
                log.warning("document %s: no stored state, rebuilt from disk", doc_id)
                await self.store.rebuild(doc_id, Entry(text_update(text), None, "load"))
            stored = await self.store.load(doc_id)
            if stored.disk_seq < stored.seq or stored.disk_hash is None:
                await self.store.set_disk(doc_id, disk.digest, stored.seq)
                stored = await self.store.load(doc_id)
        live = LiveDocument(
            self.store, stored, commits=self.commits, project_id=project_id, path=path
        )
        sync = FileSync(
            live,
            self.files,
            self.store,
            max_bytes=self.policy.max_bytes,
            save_delay=self.policy.save_delay,
            save_within=self.policy.save_within,
            disk_hash=stored.disk_hash,
            disk_seq=stored.disk_seq,
        )
        entry = self._open[doc_id] = _Open(live, sync)
        self._by_path[(project_id, path)] = doc_id
        self.watcher.track(project_id, path)
        live.resync_listeners.append(lambda _epoch: self._resynced(entry))
        await self._lease(entry)
        for listener in list(self.open_listeners):
            try:
                await listener(live, sync)
            except Exception:
                log.exception("document %s: an open listener failed", doc_id)
        return live

    async def _resynced(self, entry: _Open) -> None:
        stored = await self.store.load(entry.live.id)
        entry.sync.disk_hash, entry.sync.disk_seq, entry.sync.base = (
            stored.disk_hash,
            stored.disk_seq,
            None,
        )

    def retain(self, live: LiveDocument) -> None:
        live.clients += 1
        entry = self._open.get(live.id)
        if entry is not None and entry.closing is not None:
            entry.closing.cancel()
            entry.closing = None

    def release(self, live: LiveDocument) -> None:
        live.clients -= 1
        entry = self._open.get(live.id)
        if live.clients <= 0 and entry is not None and entry.closing is None:
            entry.closing = asyncio.get_running_loop().call_later(
                self.policy.grace, self._start_close, live.id
            )

    def _start_close(self, doc_id: uuid.UUID) -> None:
        task = asyncio.get_running_loop().create_task(self._close(doc_id))
        self._retiring.add(task)  # `close` waits for it: its last checkpoint and save
        task.add_done_callback(self._retiring.discard)

    def live(self, doc_id: uuid.UUID) -> LiveDocument | None:
        entry = self._open.get(doc_id)
        return entry.live if entry is not None else None

    def open_documents(self) -> list[LiveDocument]:
        return [entry.live for entry in self._open.values()]

    def find(self, project_id: uuid.UUID, path: str) -> LiveDocument | None:
        """The file's document if it is in memory here."""
        doc_id = self._by_path.get((project_id, path))
        return self.live(doc_id) if doc_id is not None else None

    async def replace_text(
        self, project_id: uuid.UUID, path: str, text: str, *, account_id: uuid.UUID
    ) -> bool:
        """If the file's document is in memory here, make its text `text`: a minimal diff
        committed as an edit by `account_id`, seen by every editor, saved like any edit.
        False (nothing done) when the document is not in memory here."""
        live = self.find(project_id, path)
        if live is None:
            return False
        self.retain(live)
        try:
            for _ in range(3):  # a rebuild in between: diff against the new epoch
                update = await asyncio.to_thread(update_to, live.doc.get_update(), TEXT, text)
                with contextlib.suppress(StaleEpoch):
                    await live.submit(update, epoch=live.epoch, account_id=account_id)
                    return True
            return False
        finally:
            self.release(live)

    async def _files_changed(self, changes: FileChanges) -> None:
        """The watcher's call: the writer merges each changed open file at once."""
        touched = changes.modified | changes.deleted
        for entry in list(self._open.values()):
            live = entry.live
            if live.project_id == changes.project_id and (
                changes.everything or live.path in touched
            ):
                await entry.sync.check()

    async def _close(self, doc_id: uuid.UUID) -> None:
        entry = self._open.get(doc_id)
        if entry is None or entry.live.clients > 0:
            return
        del self._open[doc_id]
        self._by_path.pop((entry.live.project_id, entry.live.path), None)
        self.watcher.untrack(entry.live.project_id, entry.live.path)
        await self._retire(entry)

    async def _retire(self, entry: _Open) -> None:
        try:
            await entry.live.idle()
            await entry.sync.flush()
            if entry.sync.writer:
                await self._checkpoint(entry, force=True)
                await self.locks.release(entry.live.id)
        except Exception:
            log.exception("document %s: not closed cleanly", entry.live.id)
        await entry.sync.close()

    # -- other hubs -------------------------------------------------------------------

    def notified(self, payload: str) -> None:
        """NOTIFY callback: `<document id> <epoch> <seq>`, one or more, comma-separated
        (a group commit sends one notification for its documents)."""
        for pointer in payload.split(","):
            try:
                raw_id, epoch, seq = pointer.split()
                entry = self._open.get(uuid.UUID(raw_id))
                if entry is not None:
                    entry.live.behind(int(epoch), int(seq))
            except ValueError:
                log.warning("bad document notification %r", pointer)

    def missed_notifications(self) -> None:
        """The listener reconnected: catch up every open document."""
        for entry in self._open.values():
            entry.live.behind(entry.live.epoch, entry.live.seq + 1)

    # -- the background loop ----------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick_forever())
        self.presence.start()

    async def close(self) -> None:
        """Flush and forget every document; nothing of this service runs afterwards."""
        await cancel(self._task)
        await self.presence.close()
        entries = list(self._open.values())
        self._open.clear()
        self._by_path.clear()
        for entry in entries:
            if entry.closing is not None:
                entry.closing.cancel()
        await asyncio.gather(*(self._retire(e) for e in entries), *self._retiring)
        await self.commits.close()
        await self.locks.close()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.policy.tick)
            if not await self.locks.check():
                for entry in self._open.values():
                    entry.sync.writer = False  # the locks went with their connection
            for entry in list(self._open.values()):
                if self._open.get(entry.live.id) is not entry:
                    continue  # it left memory during this tick
                try:
                    await self._lease(entry)
                    if entry.sync.writer:
                        await self._checkpoint(entry)
                except Exception:
                    log.exception("document %s: upkeep failed", entry.live.id)

    async def _lease(self, entry: _Open) -> None:
        """Become the document's writer if no hub is."""
        if entry.sync.writer and self.locks.holds(entry.live.id):
            return
        entry.sync.writer = False
        if await self.locks.try_hold(entry.live.id):
            if self._open.get(entry.live.id) is not entry:  # it left memory meanwhile
                await self.locks.release(entry.live.id)
                return
            entry.sync.writer = True
            await entry.sync.check()  # changes on disk while nobody wrote it
            stored = await self.store.load(entry.live.id)
            if stored.disk_seq < entry.live.seq:
                entry.sync.schedule()  # edits the last writer did not save

    async def _checkpoint(self, entry: _Open, *, force: bool = False) -> None:
        live = entry.live
        fresh = live.seq - live.checkpoint_seq
        due = fresh >= self.policy.checkpoint_every or (
            fresh > 0 and time.monotonic() - live.checkpoint_time > self.policy.checkpoint_after
        )
        if fresh > 0 and (due or force):
            await live.idle()
            seq, epoch, state = live.seq, live.epoch, live.doc.get_update()
            await self.store.checkpoint(live.id, epoch, seq, state)
            live.checkpoint_seq, live.checkpoint_time = seq, time.monotonic()
