"""Accounts: sign up (open, closed or by token), sign in (rate-limited), profile and
password changes, admins, bans."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core import validation
from cocalc_k8s.core.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized
from cocalc_k8s.core.ratelimit import FailureWindow
from cocalc_k8s.db.models import Account, Session
from cocalc_k8s.db.notify import CREDENTIALS, notify
from cocalc_k8s.services import events, signup_tokens
from cocalc_k8s.services.passwords import hash_password, needs_rehash, verify_password
from cocalc_k8s.services.principal_cache import PrincipalCache
from cocalc_k8s.services.site_settings import SIGN_UP, SITE_CHANNEL, SiteSettings

BAD_CREDENTIALS = "wrong email or password"
BANNED = "this account has been banned; contact the site's admins"
# What an account looks like to itself and to admins.
ACCOUNT_COLUMNS = (
    Account.account_id,
    Account.email,
    Account.name,
    Account.is_admin,
    Account.created,
    Account.banned,
)
CLOSED = "sign-up is closed on this server; ask an admin for an account"


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    admin_email: str | None = None
    first_account_admin: bool = False
    login_attempts: int = 10
    login_window: float = 900.0


class AccountService:
    def __init__(
        self,
        engine: AsyncEngine,
        policy: AccountPolicy,
        *,
        cache: PrincipalCache | None = None,
        site: SiteSettings | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.cache = cache or PrincipalCache()
        self.site = site or SiteSettings(engine)
        self._per_account = FailureWindow(limit=policy.login_attempts, window=policy.login_window)
        self._per_address = FailureWindow(
            limit=policy.login_attempts * 5, window=policy.login_window
        )

    async def sign_up(
        self, *, email: Any, password: Any, name: Any, token: Any = None
    ) -> uuid.UUID:
        """Create an account. BadRequest on invalid input, Conflict on a taken email,
        Forbidden while sign-up is closed or for a bad token while it is by token (the
        token's use is counted in the same transaction as the new account)."""
        email = validation.email(email)
        name = validation.name(name)
        password = validation.password(password)
        async with self.engine.connect() as conn:  # refuse before the costly hashing
            config = await self.site.config(conn)
            if config.sign_up == "closed":
                raise Forbidden(config.sign_up_locked or CLOSED)
        password_hash = await hash_password(password)
        account_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            # Serialises concurrent first sign-ups so only one can be "the first account".
            await conn.execute(select(func.pg_advisory_xact_lock(7_001)))
            config = await self.site.config(conn)
            mode = config.sign_up
            if mode == "closed":
                raise Forbidden(config.sign_up_locked or CLOSED)
            used = await signup_tokens.consume(conn, token) if mode == "token" else None
            first = (await conn.execute(select(func.count()).select_from(Account))).scalar_one()
            is_admin = email == self.policy.admin_email or (
                self.policy.first_account_admin and first == 0
            )
            row = await conn.execute(
                insert(Account)
                .values(
                    account_id=account_id,
                    email=email,
                    name=name,
                    password_hash=password_hash,
                    is_admin=is_admin,
                )
                .on_conflict_do_nothing(index_elements=["email"])
                .returning(Account.account_id)
            )
            if row.first() is None:
                raise Conflict("an account with this email already exists")
            await events.record(
                conn, "account.created", account_id=account_id, admin=is_admin, token=used
            )
            if self.site.isolation.single_account and first == 0:
                # Sign-up has just closed (core.isolation): every hub's pages must say so.
                await notify(conn, SITE_CHANNEL, SIGN_UP)
        if self.site.isolation.single_account and first == 0:
            await self.site.reload()
        return account_id

    async def authenticate(self, *, email: Any, password: Any, address: str) -> uuid.UUID:
        """Check credentials. The same Unauthorized for an unknown email and a wrong
        password; RateLimited after too many failures for this account or address."""
        if not isinstance(email, str) or not isinstance(password, str) or not password:
            raise Unauthorized(BAD_CREDENTIALS)
        email = email.strip().lower()
        account_key = "account:" + email
        address_key = "address:" + address
        wait = max(
            self._per_account.retry_after(account_key), self._per_address.retry_after(address_key)
        )
        if wait:
            raise RateLimited(
                f"too many failed sign-in attempts; try again in {wait} seconds",
                retry_after=wait,
            )
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Account.account_id, Account.password_hash, Account.banned).where(
                        Account.email == email
                    )
                )
            ).first()
        if not await verify_password(row.password_hash if row else None, password[:256]):
            self._per_account.fail(account_key)
            self._per_address.fail(address_key)
            raise Unauthorized(BAD_CREDENTIALS)
        assert row is not None
        self._per_account.reset(account_key)
        if row.banned is not None:  # told only to whoever knows the password
            raise Forbidden(BANNED)
        if needs_rehash(row.password_hash):
            await self._store_password(row.account_id, await hash_password(password))
        account_id: uuid.UUID = row.account_id
        return account_id

    async def get(self, account_id: uuid.UUID) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(*ACCOUNT_COLUMNS).where(Account.account_id == account_id))
            ).first()
        if row is None:
            raise NotFound("no such account")
        return dict(row._mapping)

    async def set_name(self, account_id: uuid.UUID, raw_name: Any) -> str:
        name = validation.name(raw_name)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Account).where(Account.account_id == account_id).values(name=name)
            )
            await notify(conn, CREDENTIALS, str(account_id))
        self.cache.drop_account(account_id)
        return name

    async def change_password(
        self, account_id: uuid.UUID, *, current: Any, new: Any, keep_session: bytes | None
    ) -> None:
        """Check the current password, store the new one and end every other session."""
        new = validation.password(new, field="new password")
        async with self.engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(Account.password_hash).where(Account.account_id == account_id)
                )
            ).scalar_one()
        if not isinstance(current, str) or not await verify_password(stored, current):
            raise Forbidden("the current password is wrong")
        await self._store_password(account_id, await hash_password(new), keep_session)

    async def _store_password(
        self, account_id: uuid.UUID, password_hash: str, keep_session: bytes | None = None
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Account)
                .where(Account.account_id == account_id)
                .values(password_hash=password_hash)
            )
            await notify(conn, CREDENTIALS, str(account_id))
            if keep_session is not None:
                await conn.execute(
                    delete(Session).where(
                        Session.account_id == account_id, Session.token_hash != keep_session
                    )
                )
                await events.record(conn, "account.password_changed", account_id=account_id)
        self.cache.drop_account(account_id)

    async def make_admin(self, email: Any) -> uuid.UUID:
        email = validation.email(email)
        async with self.engine.connect() as conn:
            account_id = (
                await conn.execute(select(Account.account_id).where(Account.email == email))
            ).scalar_one_or_none()
        if account_id is None:
            raise NotFound(f"no account with email {email}")
        await self.set_admin(account_id, True, by=None)
        return account_id

    async def set_admin(
        self, account_id: uuid.UUID, is_admin: bool, *, by: uuid.UUID | None
    ) -> None:
        """Grant or remove admin rights; every hub sees it at once (NOTIFY)."""
        async with self.engine.begin() as conn:
            changed = (
                await conn.execute(
                    update(Account)
                    .where(Account.account_id == account_id)
                    .values(is_admin=is_admin)
                    .returning(Account.account_id)
                )
            ).scalar_one_or_none()
            if changed is None:
                raise NotFound("no such account")
            await events.record(
                conn, "account.admin_set", account_id=by, target=str(account_id), is_admin=is_admin
            )
            await notify(conn, CREDENTIALS, str(account_id))
        self.cache.drop_account(account_id)

    async def set_banned(self, account_id: uuid.UUID, banned: bool, *, by: uuid.UUID) -> None:
        """Ban (or unban) an account. A ban deletes its sessions and, through NOTIFY, ends
        every cached credential at once on every hub; its API keys stop working (they are
        checked against the ban) and come back with an unban."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    update(Account)
                    .where(Account.account_id == account_id)
                    .values(banned=datetime.now(UTC) if banned else None)
                    .returning(Account.is_admin, Account.email)
                )
            ).first()
            if row is None:
                raise NotFound("no such account")
            if banned:
                await conn.execute(delete(Session).where(Session.account_id == account_id))
            await events.record(
                conn,
                "account.banned" if banned else "account.unbanned",
                account_id=by,
                target=str(account_id),
                email=row.email,
                target_is_admin=row.is_admin,
            )
            await notify(conn, CREDENTIALS, str(account_id))
        self.cache.drop_account(account_id)
