"""TimeTravel: every version of every text file of a project (up to `max_bytes`), however
it changed, listed, read, compared and restored.

Where versions come from:

- **the collaborative editor**: a document's updates are grouped into versions (after a
  pause of `pause` seconds, every `group_updates` updates, and at every save to disk) by
  the hub that writes the document's file, with the authors of the updates in the group
  (from the update rows, so other hubs' clients count too).
- **the file watcher** (`services.watcher`): a file changed outside the editor is
  recorded once its writes settle (`settle` seconds after the last change), by "disk".
- **the hub's own writes** (files API, uploads, copies) call `record_file` with the
  account at once, so they are attributed even while the project is stopped.
- **the attribution seam**: whoever sees a write coming through the hub before the file
  changes (the proxy seeing a JupyterLab save, ``PUT /api/contents/<path>``, from an
  identified collaborator) calls ``attribute(project_id, path, account_id,
  kind="jupyter")``: the next version of that path recorded within
  `ATTRIBUTION_SECONDS` (by the watcher, or by anyone) is by that account, of that kind.

Versions are deduplicated against the newest one (same SHA-256: not recorded again) and
stored as compressed deltas (`store`). Reading the history first records the file's
current text if it differs from the newest version (a change the watcher missed: the hub
was down, the project was started elsewhere), so the newest version is always the file.
History follows renames done through the hub (`renamed`) and outlives deletion
(`deleted`, `deleted_in`, `restore` brings a file back).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from cocalc_k8s.core.errors import BadRequest, DomainError, NotFound
from cocalc_k8s.services.documents.disk import FileSync
from cocalc_k8s.services.documents.filetext import ReadOnly, read_text, write_text
from cocalc_k8s.services.documents.live import Change, LiveDocument
from cocalc_k8s.services.documents.service import DocumentService, clean_path
from cocalc_k8s.services.files import ProjectFiles
from cocalc_k8s.services.history.delta import readable_diff
from cocalc_k8s.services.history.store import HistoryStore
from cocalc_k8s.services.watcher import FileChanges, FileWatcher

log = logging.getLogger(__name__)

ATTRIBUTION_SECONDS = 30.0
RECORDING_AT_ONCE = 4  # settled files recorded concurrently (a burst must not drain the pool)
KINDS = ("edit", "disk", "api", "upload", "restore", "jupyter")


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    max_bytes: int = 1024**2  # larger files get no history
    settle: float = 1.0  # seconds without a change before a changed file is recorded
    pause: float = 2.0  # an edit version after this long without an update
    group_updates: int = 50  # ... or after this many updates


@dataclass(slots=True)
class _Attribution:
    account_id: uuid.UUID
    kind: str
    until: float


class HistoryService:
    def __init__(
        self,
        files: ProjectFiles,
        store: HistoryStore,
        *,
        watcher: FileWatcher,
        documents: DocumentService,
        policy: HistoryPolicy | None = None,
    ) -> None:
        self.files = files
        self.store = store
        self.documents = documents
        self.policy = policy or HistoryPolicy()
        self._attributions: dict[tuple[uuid.UUID, str], _Attribution] = {}
        self._timers: dict[tuple[uuid.UUID, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recording = asyncio.Semaphore(RECORDING_AT_ONCE)
        self._groups: weakref.WeakValueDictionary[tuple[uuid.UUID, str], _EditGroups] = (
            weakref.WeakValueDictionary()
        )
        watcher.subscribe(self._files_changed)
        documents.open_listeners.append(self._document_opened)

    # -- the seam for writes seen on their way in ------------------------------------------

    def attribute(
        self, project_id: uuid.UUID, path: str, account_id: uuid.UUID, *, kind: str = "jupyter"
    ) -> None:
        """The next version of `path` recorded within `ATTRIBUTION_SECONDS` is by
        `account_id`, of `kind` (see the module's docstring)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        now = time.monotonic()
        if len(self._attributions) > 10_000:
            self._attributions = {k: a for k, a in self._attributions.items() if a.until > now}
        self._attributions[(project_id, clean_path(path))] = _Attribution(
            account_id, kind, now + ATTRIBUTION_SECONDS
        )

    def _claim(self, project_id: uuid.UUID, path: str) -> _Attribution | None:
        found = self._attributions.pop((project_id, path), None)
        return found if found is not None and found.until > time.monotonic() else None

    # -- recording ----------------------------------------------------------------------------

    async def record_file(
        self,
        project_id: uuid.UUID,
        path: str,
        *,
        account_id: uuid.UUID | None = None,
        kind: str | None = None,
    ) -> int | None:
        """Record the file's current text (a write the hub made or saw); None when it is
        not a text file within the limit, is gone, or is the newest version already."""
        try:
            disk = await read_text(self.files, project_id, path, max_bytes=self.policy.max_bytes)
        except (ReadOnly, DomainError, OSError):
            return None
        if disk.text is None:
            return None
        return await self._record(project_id, path, disk.text, account_id=account_id, kind=kind)

    async def _record(
        self,
        project_id: uuid.UUID,
        path: str,
        text: str,
        *,
        account_id: uuid.UUID | None,
        kind: str | None,
    ) -> int | None:
        claimed = self._claim(project_id, path)
        if account_id is None and claimed is not None:
            account_id, kind = claimed.account_id, kind or claimed.kind
        authors = [account_id] if account_id is not None else []
        return await self.store.record(project_id, path, text, authors=authors, kind=kind or "disk")

    async def record_quietly(
        self, project_id: uuid.UUID, path: str, *, account_id: uuid.UUID, kind: str
    ) -> None:
        """`record_file` for request handlers: a failure is logged, never the request's."""
        try:
            await self.record_file(project_id, path, account_id=account_id, kind=kind)
        except Exception:
            log.exception("project %s: %s: no version recorded", project_id, path)

    async def _files_changed(self, changes: FileChanges) -> None:
        loop = asyncio.get_running_loop()
        for path in changes.modified | changes.deleted:
            key = (changes.project_id, path)
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            self._timers[key] = loop.call_later(self.policy.settle, self._settled, key)

    def _settled(self, key: tuple[uuid.UUID, str]) -> None:
        self._timers.pop(key, None)
        self._spawn(self._record_settled(*key))

    def _editing(self, project_id: uuid.UUID, path: str) -> _EditGroups | None:
        """The file's edit groups when this hub writes its open document: then the
        document is the file's truth (a disk change reaches it as an update), and its
        versions are recorded from it, with their authors."""
        group = self._groups.get((project_id, path))
        if group is None or not group.sync.writer:
            return None
        return group if self.documents.find(project_id, path) is group.live else None

    async def _record_settled(self, project_id: uuid.UUID, path: str) -> None:
        async with self._recording:
            await self._record_settled_now(project_id, path)

    async def _record_settled_now(self, project_id: uuid.UUID, path: str) -> None:
        if self._editing(project_id, path) is not None:
            return
        try:
            try:
                disk = await read_text(
                    self.files, project_id, path, max_bytes=self.policy.max_bytes
                )
            except (ReadOnly, DomainError, OSError):
                return  # there, but not a file with a history
            if disk.text is not None:
                await self._record(project_id, path, disk.text, account_id=None, kind=None)
            elif await self.store.find(project_id, path) is not None:
                await self.store.mark_deleted(project_id, [path])
        except Exception:
            log.exception("project %s: %s: no version recorded", project_id, path)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _document_opened(self, live: LiveDocument, sync: FileSync) -> None:
        self._groups[(live.project_id, live.path)] = _EditGroups(self, live, sync)
        self._spawn(self.record_file(live.project_id, live.path))  # its text when opened

    async def close(self) -> None:
        """Record what is settling now, then stop."""
        timers, self._timers = self._timers, {}
        for key, timer in timers.items():
            timer.cancel()
            self._spawn(self._record_settled(*key))
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- renames and deletions through the hub --------------------------------------------------

    async def renamed(self, project_id: uuid.UUID, src: str, dst: str) -> None:
        await self.store.renamed(project_id, clean_path(src), clean_path(dst))

    async def deleted(self, project_id: uuid.UUID, path: str) -> None:
        await self.store.mark_deleted(project_id, [clean_path(path)])

    # -- reading --------------------------------------------------------------------------

    async def versions(
        self, project_id: uuid.UUID, path: str, *, before: int | None, limit: int
    ) -> dict[str, Any]:
        path = clean_path(path)
        group = self._editing(project_id, path)
        if group is not None:
            await group.flush()  # the edits since its last version
        else:
            await self.record_file(project_id, path)  # a change nobody reported
        history = await self.store.find(project_id, path)
        if history is None:
            return {"path": path, "deleted": None, "versions": [], "more": False}
        found, more = await self.store.versions(history.id, before=before, limit=limit)
        names = await self.store.names({a for v in found for a in v.authors})
        return {
            "path": path,
            "deleted": history.deleted.isoformat() if history.deleted else None,
            "versions": [
                {
                    "version": v.version,
                    "time": v.time.isoformat(),
                    "authors": [
                        {"account_id": str(a), "name": names.get(a, "a deleted account")}
                        for a in v.authors
                    ],
                    "size": v.size,
                    "kind": v.kind,
                    "restored_from": v.restored_from,
                }
                for v in found
            ],
            "more": more,
        }

    async def text(self, project_id: uuid.UUID, path: str, version: int) -> str:
        history = await self.store.find(project_id, clean_path(path))
        if history is None:
            raise NotFound("this file has no history")
        return await self.store.text(history.id, version)

    async def diff(
        self, project_id: uuid.UUID, path: str, old: int, new: int
    ) -> list[tuple[str, str]]:
        before = await self.text(project_id, path, old)
        after = await self.text(project_id, path, new)
        return await asyncio.to_thread(readable_diff, before, after)

    async def deleted_in(self, project_id: uuid.UUID, folder: str) -> list[dict[str, Any]]:
        folder = folder.strip("/")
        return await self.store.deleted_in(project_id, clean_path(folder) if folder else "")

    # -- restoring ----------------------------------------------------------------------------

    async def restore(
        self, project_id: uuid.UUID, path: str, version: int, *, account_id: uuid.UUID
    ) -> int:
        """Make the file's text that of `version` again, as a new edit by `account_id`
        (every open editor sees it; a deleted file comes back); returns the new version
        (the restore is a version of its own, nothing is lost)."""
        path = clean_path(path)
        text = await self.text(project_id, path, version)
        if len(text.encode()) > self.policy.max_bytes:
            raise BadRequest("this version is larger than the history's size limit")
        history = await self.store.find(project_id, path)
        was_deleted = history is not None and history.deleted is not None
        await self.store.undelete(project_id, path)
        if was_deleted:  # the file first: an open document then merges it, nothing to lose
            await write_text(self.files, project_id, path, text)
            await self.documents.replace_text(project_id, path, text, account_id=account_id)
        elif not await self.documents.replace_text(project_id, path, text, account_id=account_id):
            await write_text(self.files, project_id, path, text)
        recorded = await self.store.record(
            project_id,
            path,
            text,
            authors=[account_id],
            kind="restore",
            restored_from=version,
            always=was_deleted,
        )
        if recorded is None:  # it was the newest version already
            history = await self.store.find(project_id, path)
            assert history is not None
            return history.last_version
        return recorded


class _EditGroups:
    """Groups one open document's updates into edit versions (see the module docstring).
    Only the hub that writes the document's file records them."""

    def __init__(self, history: HistoryService, live: LiveDocument, sync: FileSync) -> None:
        self.history = history
        self.live = live
        self.sync = sync
        self.recorded = (live.epoch, live.seq)
        self.count = 0
        self._group = self._group_size()
        # (seq, author) of each update since the last version, in order; an author of
        # None from another hub ("hub") is not known here: the store is asked instead.
        self._authors: list[tuple[int, uuid.UUID | None, bool]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._last_change = 0.0
        self._lock = asyncio.Lock()
        live.listeners.append(self._changed)
        sync.saved_listeners.append(self._saved)

    async def _changed(self, change: Change) -> None:
        # Called for every committed update, before the sender hears its ack: nothing here
        # waits (the version is recorded by a task of its own), and one timer serves a
        # whole burst (it looks again when it fires instead of being re-armed per update).
        if change.source == "load":
            return
        self._authors.append((change.seq, change.author, change.source != "hub"))
        self.count += 1
        loop = asyncio.get_running_loop()
        self._last_change = loop.time()
        if self.count >= self._group:
            self.count = 0
            self._cancel_timer()
            self.history._spawn(self.flush())
        elif self._timer is None:
            self._timer = loop.call_later(self.history.policy.pause, self._pause_over)

    def _pause_over(self) -> None:
        self._timer = None
        quiet_for = asyncio.get_running_loop().time() - self._last_change
        if quiet_for < self.history.policy.pause:
            remaining = self.history.policy.pause - quiet_for
            self._timer = asyncio.get_running_loop().call_later(remaining, self._pause_over)
        else:
            self.history._spawn(self.flush())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _group_size(self) -> int:
        """`group_updates`, give or take a fifth: documents typed into since the same
        moment do not all record a version at once (25 at once stalled the edits)."""
        size = self.history.policy.group_updates
        return max(1, round(size * random.uniform(0.8, 1.2)))  # noqa: S311 - not a secret

    def _authors_of(self, after: int, upto: int) -> list[uuid.UUID] | None:
        """Who wrote updates `after` < seq <= `upto`, if this hub saw each of them."""
        seen = [entry for entry in self._authors if after < entry[0] <= upto]
        if len(seen) != upto - after or not all(known for _, _, known in seen):
            return None
        return sorted({author for _, author, _ in seen if author is not None})

    async def _saved(self, _text: str) -> None:
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            self._cancel_timer()
            live = self.live
            epoch, seq, text = live.epoch, live.seq, str(live.text)
            after = self.recorded[1] if self.recorded[0] == epoch else 0
            self.count = 0  # the updates from here on make the next version
            self._group = self._group_size()
            authors = self._authors_of(after, seq)
            self._authors = [entry for entry in self._authors if entry[0] > seq]
            if seq <= after or not self.sync.writer:
                return
            if len(text.encode()) > self.history.policy.max_bytes:
                return
            if authors is None:
                authors = await self.history.store.document_authors(live.id, epoch, after, seq)
            await self.history.store.record(
                live.project_id,
                live.path,
                text,
                authors=authors,
                kind="edit" if authors else "disk",
            )
            self.recorded = (epoch, seq)
