"""Project activity (file writes, terminal input, exec, proxied traffic) for idle culling.

`touch` is cheap and synchronous: it records the time in memory and writes
`projects.last_active` at most once per `interval` per project, in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.db.models import Project

log = logging.getLogger(__name__)


class ActivityRecorder:
    def __init__(self, engine: AsyncEngine, *, interval: float = 60.0) -> None:
        self.engine = engine
        self.interval = interval
        self._written: dict[uuid.UUID, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def touch(self, project_id: uuid.UUID) -> None:
        now = time.monotonic()
        if now - self._written.get(project_id, -1e18) < self.interval:
            return
        self._written[project_id] = now
        task = asyncio.create_task(self._write(project_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, project_id: uuid.UUID) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(Project)
                    .where(Project.project_id == project_id)
                    .values(last_active=datetime.now(UTC))
                )
        except Exception:  # activity is best effort; the next touch tries again
            self._written.pop(project_id, None)
            log.exception("could not record activity of project %s", project_id)

    async def flush(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
