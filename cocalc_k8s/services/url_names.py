"""Usernames and project URL names, and the redirects their old values leave behind.

A username is unique across accounts; a project URL name is unique among the projects of
its owner. Changing either keeps the old one as a redirect (so published vanity URLs keep
working) until someone takes the old name for themselves: current names always win.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core import url_names
from cocalc_k8s.core.errors import Conflict, Forbidden
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.db.models import (
    Account,
    ProjectNameRedirect,
    ProjectUrlName,
    ProjectUser,
    UsernameRedirect,
)
from cocalc_k8s.services import events
from cocalc_k8s.services.projects import ProjectService


class Resolved(NamedTuple):
    """Where a (username, project name) pair leads now: the owner and project ids, and
    the current names (differing from the asked ones when an old name was followed)."""

    owner_id: uuid.UUID
    project_id: uuid.UUID
    username: str
    project_name: str


class UrlNames:
    def __init__(self, engine: AsyncEngine, projects: ProjectService) -> None:
        self.engine = engine
        self.projects = projects

    async def username(self, account_id: uuid.UUID) -> str | None:
        async with self.engine.connect() as conn:
            value: str | None = await conn.scalar(
                select(Account.username).where(Account.account_id == account_id)
            )
            return value

    async def set_username(self, principal: Principal, value: Any) -> str | None:
        """Set (or, with None, clear) the caller's username; Conflict when taken."""
        new = None if value is None else url_names.username(value)
        try:
            async with self.engine.begin() as conn:
                old = await conn.scalar(
                    select(Account.username)
                    .where(Account.account_id == principal.account_id)
                    .with_for_update()
                )
                if old == new:
                    return new
                if new is not None:  # a name someone gave up is free to take
                    await conn.execute(
                        delete(UsernameRedirect).where(UsernameRedirect.old_name == new)
                    )
                await conn.execute(
                    update(Account)
                    .where(Account.account_id == principal.account_id)
                    .values(username=new)
                )
                if old is not None:
                    await conn.execute(
                        pg_insert(UsernameRedirect)
                        .values(old_name=old, account_id=principal.account_id)
                        .on_conflict_do_update(
                            index_elements=["old_name"],
                            set_={"account_id": principal.account_id},
                        )
                    )
                await events.record(
                    conn, "account.username", account_id=principal.account_id, username=new
                )
        except IntegrityError:
            raise Conflict(f"the username {new!r} is taken") from None
        return new

    async def project_name(self, project_id: uuid.UUID) -> str | None:
        async with self.engine.connect() as conn:
            value: str | None = await conn.scalar(
                select(ProjectUrlName.name).where(ProjectUrlName.project_id == project_id)
            )
            return value

    async def set_project_name(
        self, principal: Principal, project_id: uuid.UUID, value: Any
    ) -> str | None:
        """Set (or clear) a project's URL name: its owner (or an admin) only."""
        new = None if value is None else url_names.project_name(value)
        await self.projects.require_owner(principal, project_id)
        try:
            async with self.engine.begin() as conn:
                owner_id = await conn.scalar(
                    select(ProjectUser.account_id).where(
                        ProjectUser.project_id == project_id, ProjectUser.role == "owner"
                    )
                )
                if owner_id is None:
                    raise Forbidden("this project has no owner to name it under")
                old = await conn.scalar(
                    select(ProjectUrlName.name)
                    .where(ProjectUrlName.project_id == project_id)
                    .with_for_update()
                )
                if old == new:
                    return new
                await conn.execute(
                    delete(ProjectUrlName).where(ProjectUrlName.project_id == project_id)
                )
                if new is not None:
                    await conn.execute(
                        delete(ProjectNameRedirect).where(
                            ProjectNameRedirect.owner_id == owner_id,
                            ProjectNameRedirect.old_name == new,
                        )
                    )
                    await conn.execute(
                        pg_insert(ProjectUrlName).values(
                            project_id=project_id, owner_id=owner_id, name=new
                        )
                    )
                if old is not None:
                    await conn.execute(
                        pg_insert(ProjectNameRedirect)
                        .values(owner_id=owner_id, old_name=old, project_id=project_id)
                        .on_conflict_do_update(
                            index_elements=["owner_id", "old_name"],
                            set_={"project_id": project_id},
                        )
                    )
                await events.record(
                    conn,
                    "project.url_name",
                    account_id=principal.account_id,
                    project_id=project_id,
                    name=new,
                )
        except IntegrityError:
            raise Conflict(f"you already have a project named {new!r}") from None
        return new

    async def resolve(self, username: str, project_name: str) -> Resolved | None:
        """Follow current names first, then old ones; None when nothing matches."""
        async with self.engine.connect() as conn:
            owner = (
                await conn.execute(
                    select(Account.account_id, Account.username).where(Account.username == username)
                )
            ).first()
            if owner is None:
                owner = (
                    await conn.execute(
                        select(Account.account_id, Account.username)
                        .join(UsernameRedirect, UsernameRedirect.account_id == Account.account_id)
                        .where(UsernameRedirect.old_name == username)
                    )
                ).first()
            if owner is None or owner.username is None:
                return None
            project = (
                await conn.execute(
                    select(ProjectUrlName.project_id, ProjectUrlName.name).where(
                        ProjectUrlName.owner_id == owner.account_id,
                        ProjectUrlName.name == project_name,
                    )
                )
            ).first()
            if project is None:
                project = (
                    await conn.execute(
                        select(ProjectUrlName.project_id, ProjectUrlName.name)
                        .join(
                            ProjectNameRedirect,
                            ProjectNameRedirect.project_id == ProjectUrlName.project_id,
                        )
                        .where(
                            ProjectNameRedirect.owner_id == owner.account_id,
                            ProjectNameRedirect.old_name == project_name,
                            ProjectUrlName.owner_id == owner.account_id,
                        )
                    )
                ).first()
            if project is None:
                return None
            return Resolved(owner.account_id, project.project_id, owner.username, project.name)
