"""The identity header the proxy adds to requests for a project's Jupyter server: the
visitor's account, name and colour, signed by the hub (`cocalc_k8s.core.jupyter_identity`).

Jupyter asks for many resources per page, so neither the name nor the signature is made
per request: names are cached (dropped by the CREDENTIALS NOTIFY that a change of name
sends), signed identities are reused until half their lifetime has passed.
"""

from __future__ import annotations

import time
import uuid

from cocalc_k8s.core.jupyter_identity import (
    LIFETIME,
    public_key_text,
    sign_identity,
    signing_key,
)
from cocalc_k8s.core.refreshing_cache import RefreshingCache
from cocalc_k8s.services.accounts import AccountService

NAMES_TTL = 60.0
MAX_ENTRIES = 100_000

_Key = tuple[uuid.UUID, uuid.UUID, str]  # account, project, name


class JupyterIdentities:
    def __init__(self, secret: bytes, accounts: AccountService) -> None:
        self._key = signing_key(secret)
        self.public_key = public_key_text(self._key)
        """What Jupyter verifies with (given to the agent when it starts the server)."""
        self._accounts = accounts
        self._names: RefreshingCache[uuid.UUID, str] = RefreshingCache(
            self._name, ttl=NAMES_TTL, max_entries=MAX_ENTRIES
        )
        self._signed: dict[_Key, tuple[float, bytes]] = {}

    async def header(self, account_id: uuid.UUID, project_id: uuid.UUID) -> bytes:
        """The ``X-CoCalc-Identity`` value for this visitor of this project."""
        name = await self._names.get(account_id)
        key = (account_id, project_id, name)
        now = time.time()
        known = self._signed.get(key)
        if known is not None and now < known[0]:
            return known[1]
        token = sign_identity(
            self._key, project_id=project_id, account_id=account_id, name=name, now=now
        ).encode("ascii")
        if len(self._signed) >= MAX_ENTRIES:
            self._signed.clear()
        self._signed[key] = (now + LIFETIME / 2, token)
        return token

    async def _name(self, account_id: uuid.UUID) -> str:
        account = await self._accounts.get(account_id)
        return str(account.get("name") or account.get("email") or account_id)

    def account_changed(self, payload: str) -> None:
        """NOTIFY callback (CREDENTIALS): an account changed, its name perhaps."""
        try:
            wanted = uuid.UUID(payload)
        except ValueError:
            self._names.clear()
            return
        self._names.drop(lambda account: account == wanted)

    def forget(self) -> None:
        """The listener reconnected: a change of name may have been missed."""
        self._names.clear()
