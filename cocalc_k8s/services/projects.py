"""Projects and their collaborators: create, list, edit, soft-delete, share.

Access rule, checked in one place (`access`): the owner and collaborators may use a
project; admins may use every project; anyone else is told it does not exist (NotFound),
so project ids cannot be probed. Only the owner (or an admin) deletes a project or changes
who collaborates; a collaborator may leave.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from cocalc_k8s.core import validation
from cocalc_k8s.core.errors import BadRequest, Conflict, Forbidden, NotFound
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.core.quotas import effective_quota, validate_quota
from cocalc_k8s.db.models import Account, Project, ProjectUser, SiteSetting
from cocalc_k8s.db.notify import PROJECT_ACCESS, notify
from cocalc_k8s.services import events

Role = Literal["owner", "collaborator", "admin"]
MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
MAX_COLLABORATORS = 200
NO_SUCH_PROJECT = "no such project"


def parse_project_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, TypeError):
        raise NotFound(NO_SUCH_PROJECT) from None


def _title(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("title is required")
    clean = " ".join(value.split())
    if len(clean) > MAX_TITLE:
        raise BadRequest(f"title must have at most {MAX_TITLE} characters")
    return clean


def _description(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest("description must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise BadRequest(f"description must have at most {MAX_DESCRIPTION} characters")
    return value


class ProjectService:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def access(
        self, principal: Principal, project_id: uuid.UUID, *, conn: AsyncConnection | None = None
    ) -> Role:
        """The principal's role in a live project, or NotFound."""
        query = (
            select(ProjectUser.role)
            .select_from(Project)
            .outerjoin(
                ProjectUser,
                and_(
                    ProjectUser.project_id == Project.project_id,
                    ProjectUser.account_id == principal.account_id,
                ),
            )
            .where(Project.project_id == project_id, Project.deleted.is_(None))
        )
        if conn is None:
            async with self.engine.connect() as own:
                row = (await own.execute(query)).first()
        else:
            row = (await conn.execute(query)).first()
        if row is None or (row.role is None and not principal.is_admin):
            raise NotFound(NO_SUCH_PROJECT)
        role: Role = row.role or "admin"
        return role

    async def role_of(self, account_id: uuid.UUID, project_id: uuid.UUID) -> Role | None:
        """The account's role in a live project (admins: "admin"), or None; always None for
        a banned account (this is what the content origin and open sockets recheck). One
        query."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(ProjectUser.role, Account.is_admin)
                    .select_from(Account)
                    .join(Project, Project.project_id == project_id)
                    .outerjoin(
                        ProjectUser,
                        and_(
                            ProjectUser.project_id == Project.project_id,
                            ProjectUser.account_id == Account.account_id,
                        ),
                    )
                    .where(
                        Account.account_id == account_id,
                        Account.banned.is_(None),
                        Project.deleted.is_(None),
                    )
                )
            ).first()
        if row is None:
            return None
        if row.role is not None:
            role: Role = row.role
            return role
        return "admin" if row.is_admin else None

    async def require_owner(self, principal: Principal, project_id: uuid.UUID) -> None:
        role = await self.access(principal, project_id)
        if role == "collaborator":
            raise Forbidden("only the project's owner can do this")

    async def create(self, principal: Principal, *, title: Any, description: Any = "") -> uuid.UUID:
        title = _title(title)
        description = _description(description if description is not None else "")
        project_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(Project).values(project_id=project_id, title=title, description=description)
            )
            await conn.execute(
                insert(ProjectUser).values(
                    project_id=project_id, account_id=principal.account_id, role="owner"
                )
            )
            await events.record(
                conn, "project.created", account_id=principal.account_id, project_id=project_id
            )
        return project_id

    async def list(
        self, principal: Principal, *, search: str = "", hidden: bool | None = False
    ) -> list[dict[str, Any]]:
        """The principal's projects, most recently edited first. `hidden=None`: all."""
        query = (
            select(
                Project.project_id,
                Project.title,
                Project.description,
                Project.state,
                Project.last_edited,
                Project.created,
                ProjectUser.role,
                ProjectUser.hidden,
            )
            .join(ProjectUser, ProjectUser.project_id == Project.project_id)
            .where(ProjectUser.account_id == principal.account_id, Project.deleted.is_(None))
            .order_by(Project.last_edited.desc())
            .limit(1000)
        )
        if hidden is not None:
            query = query.where(ProjectUser.hidden.is_(hidden))
        if search.strip():
            query = query.where(mentions(search, Project.title, Project.description))
        async with self.engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    async def get(self, principal: Principal, project_id: uuid.UUID) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            role = await self.access(principal, project_id, conn=conn)
            project = (
                await conn.execute(
                    select(
                        Project.project_id,
                        Project.title,
                        Project.description,
                        Project.state,
                        Project.state_error,
                        Project.state_changed,
                        Project.quota,
                        Project.created,
                        Project.last_edited,
                        Project.last_started,
                        Project.last_active,
                    ).where(Project.project_id == project_id)
                )
            ).one()
            users = await conn.execute(
                select(
                    ProjectUser.account_id,
                    ProjectUser.role,
                    ProjectUser.hidden,
                    Account.name,
                    Account.email,
                )
                .join(Account, Account.account_id == ProjectUser.account_id)
                .where(ProjectUser.project_id == project_id)
                .order_by(ProjectUser.added)
            )
            defaults = await self.default_quotas(conn)
        data = dict(project._mapping)
        collaborators = []
        hidden = False
        for user in users:
            collaborators.append(
                {"account_id": user.account_id, "name": user.name, "role": user.role}
                | ({"email": user.email} if role != "collaborator" else {})
            )
            if user.account_id == principal.account_id:
                hidden = user.hidden
        data["error"] = data.pop("state_error")
        data["quota_overrides"] = data.pop("quota")
        data["quota"] = effective_quota(defaults, data["quota_overrides"]).__dict__
        data.update(role=role, hidden=hidden, collaborators=collaborators)
        return data

    async def update(
        self, principal: Principal, project_id: uuid.UUID, body: dict[str, Any]
    ) -> None:
        """Title, description (any collaborator), hidden (per user), quota (admins)."""
        unknown = set(body) - {"title", "description", "hidden", "quota"}
        if unknown:
            raise BadRequest(f"unknown field {sorted(unknown)[0]!r}")
        values: dict[str, Any] = {}
        if "title" in body:
            values["title"] = _title(body["title"])
        if "description" in body:
            values["description"] = _description(body["description"])
        quota = None
        if "quota" in body:
            if not principal.is_admin:
                raise Forbidden("only admins can change a project's quota")
            quota = validate_quota(body["quota"])
        if "hidden" in body and not isinstance(body["hidden"], bool):
            raise BadRequest("hidden must be true or false")
        async with self.engine.begin() as conn:
            role = await self.access(principal, project_id, conn=conn)
            if values:
                await self._edit_details(conn, principal, project_id, values)
            if quota is not None:
                await conn.execute(
                    update(Project)
                    .where(Project.project_id == project_id)
                    .values(quota=Project.quota.op("||")(quota))
                )
                await events.record(
                    conn,
                    "project.quota_changed",
                    account_id=principal.account_id,
                    project_id=project_id,
                    quota=quota,
                )
            if "hidden" in body:
                if role == "admin":
                    raise BadRequest("hide a project you are not a member of? nothing to hide")
                await conn.execute(
                    update(ProjectUser)
                    .where(
                        ProjectUser.project_id == project_id,
                        ProjectUser.account_id == principal.account_id,
                    )
                    .values(hidden=body["hidden"])
                )

    async def delete(self, principal: Principal, project_id: uuid.UUID) -> None:
        """Soft delete: the project disappears for everyone; files stay until purged."""
        await self.require_owner(principal, project_id)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Project)
                .where(Project.project_id == project_id, Project.deleted.is_(None))
                .values(deleted=datetime.now(UTC))
            )
            await notify(conn, PROJECT_ACCESS, str(project_id))
            await events.record(
                conn, "project.deleted", account_id=principal.account_id, project_id=project_id
            )

    async def add_collaborator(
        self, principal: Principal, project_id: uuid.UUID, email: Any
    ) -> uuid.UUID:
        email = validation.email(email)
        await self.require_owner(principal, project_id)
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(
                    select(Account.account_id, Account.name).where(Account.email == email)
                )
            ).first()
            if found is None:
                raise NotFound(f"no account with email {email}")
            account_id: uuid.UUID = found.account_id
            count = (
                await conn.execute(select(func.count()).where(ProjectUser.project_id == project_id))
            ).scalar_one()
            if count >= MAX_COLLABORATORS:
                raise BadRequest(f"a project has at most {MAX_COLLABORATORS} collaborators")
            added = (
                await conn.execute(
                    pg_insert(ProjectUser)
                    .values(project_id=project_id, account_id=account_id, role="collaborator")
                    .on_conflict_do_nothing()
                    .returning(ProjectUser.account_id)
                )
            ).first()
            if added is None:
                raise Conflict("that account is already a collaborator")
            await notify(conn, PROJECT_ACCESS, str(project_id))
            await events.record(
                conn,
                "project.collaborator_added",
                account_id=principal.account_id,
                project_id=project_id,
                collaborator=str(account_id),
                name=found.name,
            )
        return account_id

    async def remove_collaborator(
        self, principal: Principal, project_id: uuid.UUID, account_id: uuid.UUID
    ) -> None:
        """The owner removes anyone but themself; a collaborator removes only themself."""
        role = await self.access(principal, project_id)
        leaving = account_id == principal.account_id
        if role == "collaborator" and not leaving:
            raise Forbidden("only the project's owner can remove collaborators")
        async with self.engine.begin() as conn:
            target = (
                await conn.execute(
                    select(ProjectUser.role, Account.name)
                    .join(Account, Account.account_id == ProjectUser.account_id)
                    .where(
                        ProjectUser.project_id == project_id, ProjectUser.account_id == account_id
                    )
                )
            ).first()
            if target is None:
                raise NotFound("that account is not a collaborator")
            if target.role == "owner":
                raise BadRequest("the owner cannot leave; delete the project instead")
            await conn.execute(
                delete(ProjectUser).where(
                    ProjectUser.project_id == project_id, ProjectUser.account_id == account_id
                )
            )
            await notify(conn, PROJECT_ACCESS, str(project_id))
            await events.record(
                conn,
                "project.collaborator_left" if leaving else "project.collaborator_removed",
                account_id=principal.account_id,
                project_id=project_id,
                collaborator=str(account_id),
                name=target.name,
            )

    async def _edit_details(
        self,
        conn: AsyncConnection,
        principal: Principal,
        project_id: uuid.UUID,
        values: dict[str, Any],
    ) -> None:
        """Store a new title and/or description; the project log says what changed."""
        before = (
            await conn.execute(
                select(Project.title, Project.description)
                .where(Project.project_id == project_id)
                .with_for_update()
            )
        ).one()
        await conn.execute(
            update(Project)
            .where(Project.project_id == project_id)
            .values(**values, last_edited=datetime.now(UTC))
        )
        for field, old in before._mapping.items():
            if field not in values or values[field] == old:
                continue
            # Titles are short and say what changed; descriptions may be long: not copied.
            data = {"title": values[field], "previous": old} if field == "title" else {}
            await events.record(
                conn,
                f"project.{field}_changed",
                account_id=principal.account_id,
                project_id=project_id,
                **data,
            )

    async def default_quotas(self, conn: AsyncConnection) -> dict[str, Any]:
        value = (
            await conn.execute(
                select(SiteSetting.value).where(SiteSetting.name == "default_quotas")
            )
        ).scalar_one_or_none()
        return value if isinstance(value, dict) else {}


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    return "%" + _escape_like(text) + "%"


def mentions(search: str, *columns: Any) -> ColumnElement[bool]:
    """Rows where any of `columns` contains `search` (case-insensitive, literally)."""
    pattern = contains_pattern(search.strip())
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
