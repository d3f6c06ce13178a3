"""What admins see and change across the site: stats, accounts (admin rights, bans),
projects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.db.models import Account, Project, Session
from cocalc_k8s.services.accounts import ACCOUNT_COLUMNS, AccountService
from cocalc_k8s.services.connections import Connections
from cocalc_k8s.services.projects import mentions

LIMIT = 200


class AdminService:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        accounts: AccountService,
        connections: Connections | None = None,
    ) -> None:
        self.engine = engine
        self.account_service = accounts
        self.connections = connections or Connections()

    async def stats(self) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            accounts, banned = (
                await conn.execute(select(func.count(), func.count(Account.banned)))
            ).one()
            states = await conn.execute(
                select(Project.state, func.count())
                .where(Project.deleted.is_(None))
                .group_by(Project.state)
            )
            by_state = {row[0]: row[1] for row in states}
            sessions = (
                await conn.execute(select(func.count()).where(Session.expires > datetime.now(UTC)))
            ).scalar_one()
        return {
            "accounts": accounts,
            "banned_accounts": banned,
            "projects": sum(by_state.values()),
            "running_projects": by_state.get("running", 0),
            "projects_by_state": by_state,
            "active_sessions": sessions,
            **self.connections.stats(),
        }

    async def accounts(self, search: str = "") -> list[dict[str, Any]]:
        query = select(*ACCOUNT_COLUMNS).order_by(Account.created.desc())
        if search.strip():
            query = query.where(mentions(search, Account.email, Account.name))
        async with self.engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(query.limit(LIMIT))]

    async def projects(self, search: str = "", state: str = "") -> list[dict[str, Any]]:
        query = (
            select(
                Project.project_id,
                Project.title,
                Project.state,
                Project.state_error,
                Project.last_edited,
                Project.quota,
            )
            .where(Project.deleted.is_(None))
            .order_by(Project.last_edited.desc())
        )
        if search.strip():
            query = query.where(mentions(search, Project.title))
        if state:
            query = query.where(Project.state == state)
        async with self.engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(query.limit(LIMIT))]

    async def set_admin(self, by: uuid.UUID, account_id: uuid.UUID, is_admin: Any) -> None:
        if not isinstance(is_admin, bool):
            raise BadRequest("is_admin must be true or false")
        if account_id == by and not is_admin:
            raise BadRequest("you cannot remove your own admin rights")
        await self.account_service.set_admin(account_id, is_admin, by=by)

    async def update_account(
        self, by: uuid.UUID, account_id: uuid.UUID, body: dict[str, Any]
    ) -> None:
        """`{"is_admin": bool}` and/or `{"banned": bool}`."""
        unknown = set(body) - {"is_admin", "banned"}
        if unknown or not body:
            raise BadRequest("give is_admin and/or banned (true or false)")
        for field, value in body.items():
            if not isinstance(value, bool):
                raise BadRequest(f"{field} must be true or false")
        if "banned" in body:
            await self.set_banned(by, account_id, body["banned"])
        if "is_admin" in body:
            await self.set_admin(by, account_id, body["is_admin"])

    async def set_banned(self, by: uuid.UUID, account_id: uuid.UUID, banned: Any) -> None:
        if not isinstance(banned, bool):
            raise BadRequest("banned must be true or false")
        if account_id == by and banned:
            raise BadRequest("you cannot ban yourself")
        await self.account_service.set_banned(account_id, banned, by=by)
