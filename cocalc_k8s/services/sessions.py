"""Sign-in sessions: the cookie carries a random token, the database only its hash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.identity import Principal
from cocalc_k8s.core.tokens import new_token, token_hash
from cocalc_k8s.db.models import Account, Session
from cocalc_k8s.db.notify import CREDENTIALS, notify
from cocalc_k8s.services.principal_cache import PrincipalCache


class SessionService:
    def __init__(self, engine: AsyncEngine, *, lifetime: timedelta, cache: PrincipalCache) -> None:
        self.engine = engine
        self.lifetime = lifetime
        self.cache = cache

    async def create(self, account_id: uuid.UUID, *, ip: str | None, user_agent: str | None) -> str:
        """Open a session; returns the token to put in the cookie (shown nowhere else)."""
        token = new_token()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(Session).values(
                    token_hash=token_hash(token),
                    account_id=account_id,
                    expires=datetime.now(UTC) + self.lifetime,
                    ip=(ip or "")[:64] or None,
                    user_agent=(user_agent or "")[:300] or None,
                )
            )
        return token

    async def principal(self, token: str) -> Principal | None:
        """The account behind a session token, or None when unknown, revoked or expired."""
        if not token or len(token) > 100:
            return None
        key = b"s:" + token_hash(token)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        ticket = self.cache.ticket()
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Account.account_id, Account.email, Account.name, Account.is_admin)
                    .join(Session, Session.account_id == Account.account_id)
                    .where(Session.token_hash == token_hash(token))
                    .where(Session.expires > datetime.now(UTC))
                    .where(Account.banned.is_(None))
                )
            ).first()
        if row is None:
            return None
        principal = Principal(
            account_id=row.account_id,
            email=row.email,
            name=row.name,
            is_admin=row.is_admin,
            via="session",
            credential=token,
        )
        self.cache.put(key, principal, ticket)
        return principal

    async def holder(self, hashed: bytes) -> uuid.UUID | None:
        """The account of a live session, by the hash of its token (`Credential.ref`):
        None once it is signed out, revoked, expired or its account banned. Uncached: what
        open connections are re-checked against."""
        async with self.engine.connect() as conn:
            account_id: uuid.UUID | None = (
                await conn.execute(
                    select(Session.account_id)
                    .join(Account, Account.account_id == Session.account_id)
                    .where(Session.token_hash == hashed)
                    .where(Session.expires > datetime.now(UTC))
                    .where(Account.banned.is_(None))
                )
            ).scalar_one_or_none()
        return account_id

    async def revoke(self, token: str) -> None:
        self.cache.drop(b"s:" + token_hash(token))
        async with self.engine.begin() as conn:
            account_id = (
                await conn.execute(
                    delete(Session)
                    .where(Session.token_hash == token_hash(token))
                    .returning(Session.account_id)
                )
            ).scalar_one_or_none()
            if account_id is not None:
                await notify(conn, CREDENTIALS, str(account_id))

    async def purge_expired(self) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(Session).where(Session.expires <= datetime.now(UTC)))
        return result.rowcount
