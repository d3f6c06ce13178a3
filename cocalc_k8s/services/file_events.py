"""File actions in the project log: uploads, deletes, moves, copies, new files and saves.

Kinds: ``file.uploaded``, ``file.deleted``, ``file.moved``, ``file.copied``,
``file.created``, ``file.saved``; data keys ``path`` (and ``to`` for moves and copies).
Saves come with every autosave of the editor, so ``file.saved`` is recorded at most once
per (account, project, path) per `SAVE_INTERVAL` seconds (remembered in this process).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.services import events

SAVE_INTERVAL = 600.0
_REMEMBERED = 10_000  # entries kept before old ones are dropped


class FileEvents:
    def __init__(self) -> None:
        self._saved: dict[tuple[uuid.UUID, uuid.UUID, str], float] = {}

    async def record(
        self,
        engine: AsyncEngine,
        kind: str,
        *,
        account_id: uuid.UUID,
        project_id: uuid.UUID,
        path: str,
        **data: Any,
    ) -> None:
        async with engine.begin() as conn:
            await events.record(
                conn, kind, account_id=account_id, project_id=project_id, path=path, **data
            )

    async def saved(
        self, engine: AsyncEngine, *, account_id: uuid.UUID, project_id: uuid.UUID, path: str
    ) -> bool:
        """Record `file.saved` unless this account saved this path recently."""
        now = time.monotonic()
        key = (account_id, project_id, path)
        if now - self._saved.get(key, -SAVE_INTERVAL) < SAVE_INTERVAL:
            return False
        if len(self._saved) >= _REMEMBERED:
            self._saved = {k: t for k, t in self._saved.items() if now - t < SAVE_INTERVAL}
        self._saved[key] = now
        await self.record(
            engine, "file.saved", account_id=account_id, project_id=project_id, path=path
        )
        return True
