"""API keys: named, shown once, stored hashed, revocable by their owner."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core import validation
from cocalc_k8s.core.errors import BadRequest, NotFound
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.core.tokens import API_KEY_PREFIX, new_api_key, token_hash
from cocalc_k8s.db.models import Account, ApiKey
from cocalc_k8s.db.notify import CREDENTIALS, notify
from cocalc_k8s.services import events
from cocalc_k8s.services.principal_cache import PrincipalCache

MAX_KEYS_PER_ACCOUNT = 100
_LAST_USED_EVERY = 60.0  # seconds between writes of a key's last_used time


class ApiKeyService:
    def __init__(self, engine: AsyncEngine, *, cache: PrincipalCache) -> None:
        self.engine = engine
        self.cache = cache
        self._last_used_written: dict[uuid.UUID, float] = {}

    async def create(self, account_id: uuid.UUID, name: Any) -> dict[str, Any]:
        """A new key; the returned `key` is the only time it is ever shown."""
        name = validation.name(name)
        key, prefix = new_api_key()
        key_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            count = (
                await conn.execute(select(func.count()).where(ApiKey.account_id == account_id))
            ).scalar_one()
            if count >= MAX_KEYS_PER_ACCOUNT:
                raise BadRequest(f"at most {MAX_KEYS_PER_ACCOUNT} API keys per account")
            await conn.execute(
                insert(ApiKey).values(
                    id=key_id,
                    account_id=account_id,
                    name=name,
                    prefix=prefix,
                    key_hash=token_hash(key),
                )
            )
            await events.record(conn, "api_key.created", account_id=account_id, key_id=str(key_id))
        return {"id": str(key_id), "key": key, "name": name, "prefix": prefix}

    async def list(self, account_id: uuid.UUID) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(ApiKey.id, ApiKey.name, ApiKey.prefix, ApiKey.created, ApiKey.last_used)
                .where(ApiKey.account_id == account_id)
                .order_by(ApiKey.created)
            )
            return [dict(row._mapping) for row in rows]

    async def revoke(self, account_id: uuid.UUID, key_id: str) -> None:
        """Delete one of the account's keys; NotFound for anyone else's (no probing)."""
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            raise NotFound("no such API key") from None
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(ApiKey).where(ApiKey.id == parsed, ApiKey.account_id == account_id)
            )
            if result.rowcount == 0:
                raise NotFound("no such API key")
            await notify(conn, CREDENTIALS, str(account_id))
            # The key's hash is not at hand: drop every cached credential of the account.
            self.cache.drop_account(account_id)
            await events.record(conn, "api_key.revoked", account_id=account_id, key_id=key_id)

    async def holder(self, key_id: str) -> uuid.UUID | None:
        """The account of an API key, by its id (`Credential.ref`): None once the key is
        deleted or its account banned. Uncached: what open connections are re-checked
        against."""
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            return None
        async with self.engine.connect() as conn:
            account_id: uuid.UUID | None = (
                await conn.execute(
                    select(ApiKey.account_id)
                    .join(Account, Account.account_id == ApiKey.account_id)
                    .where(ApiKey.id == parsed, Account.banned.is_(None))
                )
            ).scalar_one_or_none()
        return account_id

    async def principal(self, key: str) -> Principal | None:
        if not key.startswith(API_KEY_PREFIX) or len(key) > 100:
            return None
        cache_key = b"k:" + token_hash(key)
        cached = self.cache.get(cache_key)
        if cached is not None:
            return cached
        ticket = self.cache.ticket()
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        ApiKey.id, Account.account_id, Account.email, Account.name, Account.is_admin
                    )
                    .join(Account, Account.account_id == ApiKey.account_id)
                    .where(ApiKey.key_hash == token_hash(key), Account.banned.is_(None))
                )
            ).first()
            if row is None:
                return None
            if time.monotonic() - self._last_used_written.get(row.id, -1e9) > _LAST_USED_EVERY:
                self._last_used_written[row.id] = time.monotonic()
                await conn.execute(
                    update(ApiKey).where(ApiKey.id == row.id).values(last_used=datetime.now(UTC))
                )
                await conn.commit()
        principal = Principal(
            account_id=row.account_id,
            email=row.email,
            name=row.name,
            is_admin=row.is_admin,
            via="api_key",
            credential=str(row.id),
        )
        self.cache.put(cache_key, principal, ticket)
        return principal
