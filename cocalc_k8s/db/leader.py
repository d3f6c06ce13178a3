"""One leader per database: a PostgreSQL session-level advisory lock, held on a dedicated
connection for as long as the process lives.

The lifecycle manager acts only while it leads, so two hub processes on one database never
both start the same project. A follower retries every `retry` seconds; a leader whose
connection drops loses the lock (PostgreSQL releases it) and goes back to trying.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from cocalc_k8s.core.tasks import cancel

log = logging.getLogger(__name__)

LIFECYCLE_LEADER = 7_003


class LeaderLock:
    def __init__(self, url: str, *, key: int, retry: float = 1.0) -> None:
        self.url = url
        self.key = key
        self.retry = retry
        self.leading = False
        self._on_change: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """`callback(True)` when this process becomes the leader, `(False)` when it stops."""
        self._on_change.append(callback)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader-lock")

    async def stop(self) -> None:
        await cancel(self._task)
        self._set(False)

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    while True:
                        if not self.leading:
                            cursor = await conn.execute(
                                "SELECT pg_try_advisory_lock(%s)", (self.key,)
                            )
                            row = await cursor.fetchone()
                            if row and row[0]:
                                self._set(True)
                        else:
                            await conn.execute("SELECT 1")  # notice a dropped connection
                        await asyncio.sleep(self.retry)
            except (psycopg.Error, OSError) as exc:
                log.warning("leader lock connection lost: %s", exc)
            self._set(False)
            await asyncio.sleep(self.retry)

    def _set(self, leading: bool) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        log.info(
            "this hub %s the project lifecycle leader", "is now" if leading else "is no longer"
        )
        for callback in self._on_change:
            callback(leading)
