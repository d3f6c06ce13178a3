"""Is a session or API key still good? The database's answer, and a cached one for paths
too hot for a query per request (the content origin's gate).

`check` asks the database every time: what open connections are re-checked against.
`valid` answers from a cache of such answers, dropped per account when that account's
credentials change (sign-out, password change, ban, key deletion: NOTIFY
`cocalc_credentials` on every hub); while the listener is not connected nothing is
cached (`forget` on its reset, `enable` once it listens again). An entry
also expires after `ttl`, the bound on a change made behind the hub's back; an expired
entry is answered from while one query refreshes it, so expiry never sends a burst of
queries to the database.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from cocalc_k8s.core.identity import Credential
from cocalc_k8s.services.api_keys import ApiKeyService
from cocalc_k8s.services.sessions import SessionService

TTL = 30.0
MAX_ENTRIES = 100_000

Key = tuple[uuid.UUID, Credential]


class CredentialStatus:
    def __init__(
        self, sessions: SessionService, api_keys: ApiKeyService, *, ttl: float = TTL
    ) -> None:
        self.sessions = sessions
        self.api_keys = api_keys
        self.ttl = ttl
        self._answers: dict[Key, tuple[float, bool]] = {}
        self._inflight: dict[Key, asyncio.Future[bool]] = {}
        self._generation = 0  # bumped by every change: answers loaded before are not kept
        self.enabled = False  # caching only while the NOTIFY listener runs

    async def check(self, account_id: uuid.UUID, credential: Credential) -> bool:
        """True while the credential exists, has not expired, belongs to this account and
        the account is not banned (one query)."""
        if credential.kind == "session":
            try:
                hashed = bytes.fromhex(credential.ref)
            except ValueError:
                return False
            holder = await self.sessions.holder(hashed)
        else:
            holder = await self.api_keys.holder(credential.ref)
        return holder == account_id

    async def valid(self, account_id: uuid.UUID, credential: Credential) -> bool:
        """`check`, answered from the cache when it can be."""
        key = (account_id, credential)
        entry = self._answers.get(key)
        if entry is not None:
            if entry[0] <= time.monotonic() and key not in self._inflight:
                self._inflight[key] = asyncio.ensure_future(self._load(key))
            return entry[1]
        pending = self._inflight.get(key)
        if pending is None:
            pending = self._inflight[key] = asyncio.ensure_future(self._load(key))
        return await asyncio.shield(pending)

    async def _load(self, key: Key) -> bool:
        generation = self._generation
        try:
            answer = await self.check(*key)
            if self.enabled and generation == self._generation:
                if len(self._answers) >= MAX_ENTRIES:
                    self._answers.clear()
                self._answers[key] = (time.monotonic() + self.ttl, answer)
            return answer
        finally:
            self._inflight.pop(key, None)

    def account_changed(self, payload: str) -> None:
        """NOTIFY callback (`cocalc_credentials`, payload: an account id)."""
        self._generation += 1
        try:
            account_id = uuid.UUID(payload)
        except ValueError:
            self._answers.clear()
            return
        for key in [k for k in self._answers if k[0] == account_id]:
            del self._answers[key]

    def forget(self) -> None:
        """The listener lost its connection: answers may miss changes until it is back."""
        self.enabled = False
        self._generation += 1
        self._answers.clear()

    def enable(self) -> None:
        self.enabled = True
