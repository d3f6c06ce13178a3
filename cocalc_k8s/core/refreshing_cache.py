"""A cache of answers from a slow source (the database), for paths too hot for a query per
request, kept right by invalidation (NOTIFY) rather than by short lifetimes.

- Concurrent misses of one key share one load.
- An expired entry is still answered from while one load refreshes it, so expiry never
  sends a burst of queries to the source.
- `drop` and `clear` bump a generation: an answer whose load began before a drop is
  returned to its caller but not kept (it may predate the change the drop announced).
- While `enabled` is False (the invalidation listener is not connected) nothing is kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RefreshingCache(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        *,
        ttl: float,
        max_entries: int,
        enabled: bool = True,
    ) -> None:
        self._load_from_source = load
        self.ttl = ttl
        self.max_entries = max_entries
        self.enabled = enabled
        self._entries: dict[K, tuple[float, V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._generation = 0

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] <= time.monotonic() and key not in self._inflight:
                self._inflight[key] = asyncio.ensure_future(self._load(key))
            return entry[1]
        pending = self._inflight.get(key)
        if pending is None:
            pending = self._inflight[key] = asyncio.ensure_future(self._load(key))
        return await asyncio.shield(pending)

    def refreshes(self) -> list[asyncio.Future[V]]:
        """The loads under way (for tests and shutdown)."""
        return list(self._inflight.values())

    async def _load(self, key: K) -> V:
        generation = self._generation
        try:
            answer = await self._load_from_source(key)
            if self.enabled and generation == self._generation:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (time.monotonic() + self.ttl, answer)
            return answer
        finally:
            self._inflight.pop(key, None)

    def drop(self, match: Callable[[K], bool]) -> None:
        """Forget the entries whose key matches (and any answer being loaded now)."""
        self._generation += 1
        for key in [k for k in self._entries if match(k)]:
            del self._entries[key]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
