"""Which documents this hub writes to disk: one session-level advisory lock per document,
held on a dedicated connection.

PostgreSQL releases a session's locks the moment its connection ends, a killed hub's
included (the kernel closes its socket), so another hub, or the same one restarted, takes
the document over at its next try (every tick), with no expiry to wait out. If the
connection is lost, every lock is: `check` reports it, and the hub stops writing until
it holds them again.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg

NAMESPACE = 7_004  # the first of the two advisory lock keys: documents' writers


def lock_key(doc_id: uuid.UUID) -> int:
    """The second key: 31 bits of the document's id (collisions only share a writer)."""
    return int.from_bytes(doc_id.bytes[:4], "big") & 0x7FFFFFFF


class WriterLocks:
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._held: set[uuid.UUID] = set()
        self._lock = asyncio.Lock()

    def holds(self, doc_id: uuid.UUID) -> bool:
        return doc_id in self._held

    async def try_hold(self, doc_id: uuid.UUID) -> bool:
        """True if this hub holds (or now took) the document's lock."""
        if doc_id in self._held:
            return True
        got = await self._query("SELECT pg_try_advisory_lock(%s, %s)", lock_key(doc_id))
        if got:
            self._held.add(doc_id)
        return bool(got)

    async def release(self, doc_id: uuid.UUID) -> None:
        if doc_id in self._held:
            self._held.discard(doc_id)
            await self._query("SELECT pg_advisory_unlock(%s, %s)", lock_key(doc_id))

    async def check(self) -> bool:
        """False (and nothing held any more) when the connection was lost."""
        if not self._held:
            return True
        return await self._query("SELECT true", None) is True

    async def _query(self, sql: str, key: int | None) -> object:
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._held.clear()
                    self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                params = (NAMESPACE, key) if key is not None else None
                cursor = await self._conn.execute(sql, params)
                row = await cursor.fetchone()
                return row[0] if row else None
            except (psycopg.Error, OSError):
                self._held.clear()
                if self._conn is not None:
                    await self._conn.close()
                self._conn = None
                return None

    async def close(self) -> None:
        async with self._lock:
            self._held.clear()
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
