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

import uuid

from cocalc_k8s.core.identity import Credential
from cocalc_k8s.core.refreshing_cache import RefreshingCache
from cocalc_k8s.services.api_keys import ApiKeyService
from cocalc_k8s.services.sessions import SessionService
from cocalc_k8s.services.ssh_keys import SshKeyService

TTL = 30.0
MAX_ENTRIES = 100_000

Key = tuple[uuid.UUID, Credential]


class CredentialStatus:
    def __init__(
        self,
        sessions: SessionService,
        api_keys: ApiKeyService,
        *,
        ssh_keys: SshKeyService | None = None,
        ttl: float = TTL,
    ) -> None:
        self.sessions = sessions
        self.api_keys = api_keys
        self.ssh_keys = ssh_keys
        # Off until the listener runs: caching only while NOTIFY can drop entries.
        self._answers: RefreshingCache[Key, bool] = RefreshingCache(
            lambda key: self.check(*key), ttl=ttl, max_entries=MAX_ENTRIES, enabled=False
        )

    @property
    def enabled(self) -> bool:
        return self._answers.enabled

    async def check(self, account_id: uuid.UUID, credential: Credential) -> bool:
        """True while the credential exists, has not expired, belongs to this account and
        the account is not banned (one query)."""
        if credential.kind == "session":
            try:
                hashed = bytes.fromhex(credential.ref)
            except ValueError:
                return False
            holder = await self.sessions.holder(hashed)
        elif credential.kind == "ssh_key":
            holder = await self.ssh_keys.holder(credential.ref) if self.ssh_keys else None
        else:
            holder = await self.api_keys.holder(credential.ref)
        return holder == account_id

    async def valid(self, account_id: uuid.UUID, credential: Credential) -> bool:
        """`check`, answered from the cache when it can be."""
        return await self._answers.get((account_id, credential))

    def account_changed(self, payload: str) -> None:
        """NOTIFY callback (`cocalc_credentials`, payload: an account id)."""
        try:
            account_id = uuid.UUID(payload)
        except ValueError:
            self._answers.clear()
            return
        self._answers.drop(lambda key: key[0] == account_id)

    def forget(self) -> None:
        """The listener lost its connection: answers may miss changes until it is back."""
        self._answers.enabled = False
        self._answers.clear()

    def enable(self) -> None:
        self._answers.enabled = True
