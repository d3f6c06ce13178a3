"""Sign-up tokens: while sign-up is "by token", a new account needs one.

An admin creates a token (shown once; only its SHA-256 is stored, plus a display prefix
that also names it in the admin API), lists and revokes them. A use is counted by one
UPDATE that also checks the limits, inside the transaction that creates the account, so
two sign-ups can never both take a token's last use.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cocalc_k8s.core.errors import BadRequest, Forbidden, NotFound
from cocalc_k8s.core.tokens import token_hash
from cocalc_k8s.db.models import SignupToken
from cocalc_k8s.services import events

TOKEN_PREFIX = "st_"  # noqa: S105 - a marker, not a secret
_DISPLAY = 10  # characters after TOKEN_PREFIX kept as the token's visible name
MAX_DESCRIPTION = 200
MAX_USES = 1_000_000
MAX_DAYS = 3650


def _new_token() -> tuple[str, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    return token, token[: len(TOKEN_PREFIX) + _DISPLAY]


def _description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or any(ord(c) < 32 for c in value):
        raise BadRequest("description must be text on one line")
    clean = " ".join(value.split())
    if len(clean) > MAX_DESCRIPTION:
        raise BadRequest(f"description must have at most {MAX_DESCRIPTION} characters")
    return clean


def _positive(value: Any, field: str, high: int) -> int | None:
    """None or a whole number from 1 to `high`."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise BadRequest(f"{field} must be a whole number from 1 to {high}")
    return value


class SignupTokens:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self, admin_id: uuid.UUID, *, description: Any, max_uses: Any, expires_days: Any
    ) -> dict[str, Any]:
        """A new token; the returned `token` is the only time it is ever shown."""
        clean = _description(description)
        uses = _positive(max_uses, "max_uses", MAX_USES)
        days = _positive(expires_days, "expires_days", MAX_DAYS)
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        token, prefix = _new_token()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(SignupToken).values(
                    token_hash=token_hash(token),
                    prefix=prefix,
                    description=clean,
                    created_by=admin_id,
                    expires=expires,
                    max_uses=uses,
                )
            )
            await events.record(conn, "signup_token.created", account_id=admin_id, prefix=prefix)
        return {"token": token, "prefix": prefix, "description": clean, "max_uses": uses,
                "expires": expires}  # fmt: skip

    async def list(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    SignupToken.prefix,
                    SignupToken.description,
                    SignupToken.uses,
                    SignupToken.max_uses,
                    SignupToken.expires,
                    SignupToken.created,
                ).order_by(SignupToken.created.desc())
            )
            now = datetime.now(UTC)
            return [
                {**row._mapping, "usable": _usable(row.uses, row.max_uses, row.expires, now)}
                for row in rows
            ]

    async def revoke(self, admin_id: uuid.UUID, prefix: str) -> None:
        async with self.engine.begin() as conn:
            gone = await conn.execute(delete(SignupToken).where(SignupToken.prefix == prefix))
            if gone.rowcount == 0:
                raise NotFound("no such sign-up token")
            await events.record(conn, "signup_token.revoked", account_id=admin_id, prefix=prefix)


def _usable(uses: int, max_uses: int | None, expires: datetime | None, now: datetime) -> bool:
    return (max_uses is None or uses < max_uses) and (expires is None or expires > now)


async def consume(conn: AsyncConnection, token: Any) -> str:
    """Count one use of `token` in the caller's transaction; returns its prefix.
    Forbidden, saying why, for a missing, unknown, expired or used-up token."""
    if not isinstance(token, str) or not token.strip():
        raise Forbidden("sign-up needs a token on this server; ask an admin for one")
    digest = token_hash(token.strip()[:100])
    used = (
        await conn.execute(
            update(SignupToken)
            .where(
                SignupToken.token_hash == digest,
                or_(SignupToken.max_uses.is_(None), SignupToken.uses < SignupToken.max_uses),
                or_(SignupToken.expires.is_(None), SignupToken.expires > func.now()),
            )
            .values(uses=SignupToken.uses + 1)
            .returning(SignupToken.prefix)
        )
    ).scalar_one_or_none()
    if used is not None:
        return str(used)
    row = (
        await conn.execute(select(SignupToken.expires).where(SignupToken.token_hash == digest))
    ).first()
    if row is None:
        raise Forbidden("this sign-up token is not valid")
    if row.expires is not None and row.expires <= datetime.now(UTC):
        raise Forbidden("this sign-up token has expired")
    raise Forbidden("this sign-up token has been used up")
