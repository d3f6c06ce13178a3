"""PostgreSQL LISTEN/NOTIFY: "something changed" signals between hub processes.

A sender calls `notify(conn, channel, payload)` inside its transaction; the signal is
delivered when it commits. Each hub runs one `Listener` on a dedicated connection (outside
the pool: a running `notifies()` blocks other queries on its connection), which calls the
callbacks subscribed to a channel. When the connection is lost, `on_reset` callbacks run
(caches must assume they missed signals) and the listener reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cocalc_k8s.core.tasks import cancel

log = logging.getLogger(__name__)

CREDENTIALS = "cocalc_credentials"  # payload: an account id whose credentials changed
PROJECT_ACCESS = "cocalc_project_access"  # payload: a project id whose members changed


async def notify(conn: AsyncConnection, channel: str, payload: str) -> None:
    await conn.execute(select(func.pg_notify(channel, payload)))


class Listener:
    def __init__(self, url: str) -> None:
        self.url = url
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._on_reset: list[Callable[[], None]] = []
        self._on_connected: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        self._callbacks.setdefault(channel, []).append(callback)

    def on_reset(self, callback: Callable[[], None]) -> None:
        self._on_reset.append(callback)

    def on_connected(self, callback: Callable[[], None]) -> None:
        self._on_connected.append(callback)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify-listener")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                log.warning("notification listener lost its connection: %s", exc)
            failures = 0 if self.connected.is_set() else failures + 1
            self.connected.clear()
            self._reset()
            await asyncio.sleep(min(0.1 * 2**failures, 10.0))

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            for channel in self._callbacks:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._reset()  # anything cached before LISTEN took effect may be stale
            for connected in self._on_connected:
                connected()
            self.connected.set()
            async for message in conn.notifies():
                for callback in self._callbacks.get(message.channel, ()):
                    try:
                        callback(message.payload)
                    except Exception:
                        log.exception("notification callback failed on %s", message.channel)

    def _reset(self) -> None:
        for callback in self._on_reset:
            callback()
