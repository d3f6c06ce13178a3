"""A short-lived cache of authenticated principals, so most requests skip the database.

Entries live `ttl` seconds. Every change to an account or a credential (sign-out, revoked
key, new password, new name, admin flag) sends a NOTIFY on `cocalc_credentials`; every hub
process drops the affected entries when it arrives. A change made behind the hub's back
(an UPDATE in psql without NOTIFY) is seen within `ttl`. Caching is enabled only while
the listener is connected.

A lookup takes a `ticket()` before it reads the database and hands it to `put`: an answer
read before a change arrived is not kept (it could hold a revoked credential for `ttl`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from cocalc_k8s.core.identity import Principal

DEFAULT_TTL = 5.0
MAX_ENTRIES = 50_000


class PrincipalCache:
    def __init__(
        self, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        # Off until the change listener runs: without it, changes made by another process
        # would go unseen for `ttl`.
        self.enabled = False
        self._generation = 0  # bumped by every drop: answers loaded before it are stale

    def get(self, key: bytes) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def ticket(self) -> int:
        """Take before loading an entry; `put` keeps it only if nothing was dropped since."""
        return self._generation

    def put(self, key: bytes, principal: Principal, ticket: int) -> None:
        if not self.enabled or ticket != self._generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (self._clock() + self.ttl, principal)

    def drop(self, key: bytes) -> None:
        self._generation += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False
        self.clear()

    def drop_account_id(self, payload: str) -> None:
        """Callback for the credentials-changed notification (payload: an account id)."""
        try:
            self.drop_account(uuid.UUID(payload))
        except ValueError:
            self.clear()

    def drop_account(self, account_id: uuid.UUID) -> None:
        self._generation += 1
        for key in [k for k, (_, p) in self._entries.items() if p.account_id == account_id]:
            del self._entries[key]
