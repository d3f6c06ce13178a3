"""Connected clients: the long-lived connections this hub holds open (terminal WebSockets,
progress streams, WebSockets through the proxy), counted in memory for the admin's live
stats.

Counts are per hub process; a connection is counted from when it is accepted until its
handler lets go of it, however it ends.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

K = TypeVar("K")


class Connections:
    def __init__(self) -> None:
        self._by_kind: Counter[str] = Counter()
        self._by_account: Counter[uuid.UUID] = Counter()

    def opened(self, kind: str, account_id: uuid.UUID) -> Callable[[], None]:
        """Count one open connection; call the returned function when it closes (calls
        after the first do nothing)."""
        self._by_kind[kind] += 1
        self._by_account[account_id] += 1
        closed = False

        def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                _decrement(self._by_kind, kind)
                _decrement(self._by_account, account_id)

        return close

    @asynccontextmanager
    async def track(self, kind: str, account_id: uuid.UUID) -> AsyncIterator[None]:
        """Count one open connection while the block runs."""
        close = self.opened(kind, account_id)
        try:
            yield
        finally:
            close()

    def by_kind(self) -> dict[str, int]:
        return dict(self._by_kind)

    def accounts(self) -> int:
        return len(self._by_account)

    def stats(self) -> dict[str, int | dict[str, int]]:
        return {
            "connected_clients": sum(self._by_kind.values()),
            "connected_accounts": len(self._by_account),
            "connections_by_kind": dict(self._by_kind),
        }


def _decrement(counter: Counter[K], key: K) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
