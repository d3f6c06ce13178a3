"""Keeping a document and its file in step, by the one hub that holds its lease.

Saves: 1.5 s after the last change (and at least every 5-6 s while people keep typing, so
the file never lags far behind a busy document; the spread keeps documents that started
together from all saving at once, which stalled every document's edits for a moment), the
text is written to the file (atomic
rename), but only if the file still holds what the document last wrote or merged (its
digest): a file changed meanwhile is merged first. Disk changes (reported by the hub's file watcher,
confirmed by the file's stamp) come in as a minimal diff by "disk", committed like any
update: the disk's own change (from the text last in step, `base`, to the file's new
text) is carried over onto the document (`merge3`), then the document is saved at once
if it now differs from the file, so the file and the stored `disk_seq` say the same again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from pycrdt import Doc, Text

from cocalc_k8s.core.errors import DomainError
from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.services.documents.filetext import (
    ReadOnly,
    Stamp,
    digest,
    read_text,
    stamp,
    write_text,
)
from cocalc_k8s.services.documents.live import TEXT, Change, LiveDocument
from cocalc_k8s.services.documents.store import DocumentStore, StaleEpoch
from cocalc_k8s.services.documents.textdiff import merge3, update_to
from cocalc_k8s.services.files import ProjectFiles

log = logging.getLogger(__name__)


class FileSync:
    def __init__(
        self,
        live: LiveDocument,
        files: ProjectFiles,
        store: DocumentStore,
        *,
        max_bytes: int,
        save_delay: float,
        save_within: float,
        disk_hash: bytes | None,
        disk_seq: int,
    ) -> None:
        self.live = live
        self.files = files
        self.store = store
        self.max_bytes = max_bytes
        self.save_delay = save_delay  # seconds without a change before a save
        self.save_within = save_within  # ... but no longer than this after the first
        self.disk_hash = disk_hash
        self.disk_seq = disk_seq
        self.base: str | None = None  # the text last in step with the file, if known
        self.stamp: Stamp | None = None
        self.writer = False  # holds the lease: the only hub that saves and merges
        self._timer: asyncio.TimerHandle | None = None
        self._save_by: float | None = None  # loop time: the latest save of this burst
        self._last_change = 0.0
        self._saving: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Called after each save with the text written (TimeTravel: a save is a version).
        self.saved_listeners: list[Callable[[str], Awaitable[None]]] = []
        live.listeners.append(self._changed)

    async def _changed(self, change: Change) -> None:
        if self.writer and change.source != "disk":
            self.schedule()

    def schedule(self) -> None:
        """A change to save. One timer serves a burst of them: it looks again when it
        fires instead of being re-armed per keystroke."""
        loop = asyncio.get_running_loop()
        self._last_change = loop.time()
        if self._save_by is None:
            spread = random.uniform(1, 1.2)  # noqa: S311 - spreading saves, not a secret
            self._save_by = self._last_change + self.save_within * spread
        if self._timer is None:
            self._timer = loop.call_later(self.save_delay, self._due)

    def _due(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        now = loop.time()
        save_by = self._save_by if self._save_by is not None else now
        wait = min(self._last_change + self.save_delay, save_by) - now
        if wait > 0:
            self._timer = loop.call_later(wait, self._due)
            return
        self._save_by = None
        if self._saving is None or self._saving.done():
            self._saving = loop.create_task(self.save())
        else:  # a save is running: the changes since it began get their own
            self.schedule()

    async def flush(self) -> None:
        """Save now if a save is pending (the document is leaving memory)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._save_by = None
            await self.save()
        elif self._saving is not None:
            await asyncio.wait([self._saving])

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await cancel(self._saving)

    async def save(self) -> None:
        if not self.writer:
            return
        async with self._lock:
            try:
                await self._save()
            except (DomainError, OSError, ReadOnly) as exc:
                log.warning("document %s: not saved: %s", self.live.id, exc)

    async def _save(self) -> None:
        if self.stamp is not None and self.disk_hash is not None:
            now = await stamp(self.files, self.live.project_id, self.live.path)
            if now == self.stamp:  # the file is as this hub last wrote or read it
                await self._write()
                return
        disk = await read_text(
            self.files, self.live.project_id, self.live.path, max_bytes=self.max_bytes
        )
        if disk.text is None:  # deleted on disk: written again, never merged as "empty"
            self.disk_hash = None
        elif disk.digest != self.disk_hash:
            await self._merge(disk.text, disk.digest, disk.stamp)
            return  # _merge saved what it had to
        await self._write()

    async def _write(self) -> None:
        text, seq = str(self.live.text), self.live.seq
        if digest(text) == self.disk_hash:
            return
        self.disk_hash, self.stamp = await write_text(
            self.files, self.live.project_id, self.live.path, text
        )
        self.base, self.disk_seq = text, seq
        await self.store.set_disk(self.live.id, self.disk_hash, seq)
        for listener in list(self.saved_listeners):
            try:
                await listener(text)
            except Exception:
                log.exception("document %s: a save listener failed", self.live.id)

    async def check(self) -> None:
        """The watcher's call: merge the file's text if it changed since last seen."""
        if not self.writer:
            return
        async with self._lock:
            try:
                now = await stamp(self.files, self.live.project_id, self.live.path)
                if now == self.stamp:
                    return
                disk = await read_text(
                    self.files, self.live.project_id, self.live.path, max_bytes=self.max_bytes
                )
                self.stamp = disk.stamp
                if disk.text is not None and disk.digest != self.disk_hash:
                    await self._merge(disk.text, disk.digest, disk.stamp)
            except (DomainError, OSError, ReadOnly) as exc:
                log.warning("document %s: disk not checked: %s", self.live.id, exc)

    async def _merge(
        self, disk_text: str, disk_hash: bytes | None, disk_stamp: Stamp | None
    ) -> None:
        live = self.live
        base = self.base if self.base is not None else await self._text_at(self.disk_seq)
        current = str(live.text)
        merged = await asyncio.to_thread(merge3, base, current, disk_text)
        if merged != current:
            # Made on a copy: the live Doc changes only once the update is committed.
            update = await asyncio.to_thread(update_to, live.doc.get_update(), TEXT, merged)
            try:
                await live.submit(update, epoch=live.epoch, account_id=None, source="disk")
            except StaleEpoch:
                return
        self.disk_hash, self.stamp, self.base, self.disk_seq = (
            disk_hash,
            disk_stamp,
            disk_text,
            live.seq,
        )
        if str(live.text) != disk_text:
            await self._write()  # the file gets the document's edits it lacked
        else:
            await self.store.set_disk(live.id, disk_hash, live.seq)

    async def _text_at(self, seq: int) -> str:
        doc: Doc[Text] = Doc()
        for data in await self.store.state_at(self.live.id, self.live.epoch, seq):
            doc.apply_update(data)
        return str(doc.get(TEXT, type=Text))
