"""Published paths (the share server's data): publish, edit, unpublish, and look up.

Who may do what, checked here:
* a project's collaborators (and admins) publish, edit and unpublish its paths, and see
  every one of them whatever its visibility;
* readers reach an item by its id (`public_paths.id`, random, 144 bits: for an unlisted
  item it is the secret) or, when listed or signed-in only, by its vanity names;
* `disabled` items, items of deleted projects and every item while an admin has turned
  sharing off for the site are NotFound to readers.

The visibility rule itself (who reads what) is `may_read`; the share views call it.

Readers' lookups by id and the site switch are cached in memory (every page view would
otherwise cost two queries), only while this hub's NOTIFY listener is connected: every
change here sends `SHARE_CHANNEL` (payload: the item's id, or "*"), a project's deletion
or member change sends `PROJECT_ACCESS`, and each hub drops what they name at once. An
entry also ages out after `CACHE_SECONDS` (project titles and owners' names in it).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cocalc_k8s.core import url_names
from cocalc_k8s.core.errors import BadRequest, Conflict, NotFound
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.core.projectfs import split_path
from cocalc_k8s.db.models import (
    Account,
    Project,
    ProjectUrlName,
    ProjectUser,
    PublicPath,
    SiteSetting,
)
from cocalc_k8s.db.notify import notify
from cocalc_k8s.services import events
from cocalc_k8s.services.projects import ProjectService, mentions

Visibility = Literal["listed", "unlisted", "signed-in", "disabled"]
VISIBILITIES: tuple[Visibility, ...] = ("listed", "unlisted", "signed-in", "disabled")
LICENSES = ("none", "MIT", "Apache-2.0", "GPL-3.0", "AGPL-3.0", "CC-BY-4.0", "other")
MAX_DESCRIPTION = 10_000
MAX_PER_PROJECT = 1_000
SHARING_ENABLED = "sharing_enabled"  # site setting: false turns /share off for everyone
NO_SUCH_ITEM = "no such published item"
FIELDS = ("path", "name", "description", "license", "visibility")
SHARE_CHANNEL = "cocalc_share"  # payload: a public path's id, or "*" for the site switch
CACHE_SECONDS = 10.0


def new_share_id() -> str:
    """144 random bits, URL-safe (24 characters)."""
    return secrets.token_urlsafe(18)


def share_url(share_id: str) -> str:
    return f"/share/{share_id}"


def clean_path(value: Any) -> str:
    """A published path relative to the home ("" for the home itself), without `..`."""
    if not isinstance(value, str):
        raise BadRequest("path must be a path inside the project (a string)")
    parts = split_path(value.strip().lstrip("/") if value.strip() != "/" else "")
    if ".." in parts:
        raise BadRequest("path must not contain '..'")
    return "/".join(parts)


def _visibility(value: Any) -> Visibility:
    if value not in VISIBILITIES:
        raise BadRequest(f"visibility must be one of: {', '.join(VISIBILITIES)}")
    return cast(Visibility, value)


def _license(value: Any) -> str:
    if value not in LICENSES:
        raise BadRequest(f"license must be one of: {', '.join(LICENSES)}")
    return cast(str, value)


def _description(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest("description must be a string (markdown)")
    if len(value) > MAX_DESCRIPTION:
        raise BadRequest(f"description must have at most {MAX_DESCRIPTION} characters")
    return value


def validate_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The columns to write for a POST (`creating`) or PATCH body; BadRequest otherwise."""
    unknown = set(body) - set(FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}")
    if creating and "path" not in body:
        raise BadRequest("path is required")
    if not creating and not body:
        raise BadRequest(f"give at least one of: {', '.join(FIELDS)}")
    clean: dict[str, Any] = {}
    if "path" in body:
        clean["path"] = clean_path(body["path"])
    if "name" in body or creating:
        default = url_names.slugify((clean.get("path") or "home").rsplit("/", 1)[-1])
        clean["name"] = url_names.share_name(body.get("name", default))
    if "description" in body:
        clean["description"] = _description(body["description"])
    if "license" in body:
        clean["license"] = _license(body["license"])
    if "visibility" in body or creating:
        clean["visibility"] = _visibility(body.get("visibility", "unlisted"))
    return clean


@dataclass(frozen=True, slots=True)
class SharedItem:
    """A published path, as a reader sees it."""

    id: str
    project_id: uuid.UUID
    path: str
    name: str
    description: str
    license: str
    visibility: Visibility
    created: datetime
    last_edited: datetime
    views: int
    project_title: str
    author: str | None  # the publisher's name
    owner_username: str | None
    project_name: str | None

    @property
    def vanity_url(self) -> str | None:
        """/{username}/{project}/{share} when the owner and project have names and the
        item may be reached by name (listed or signed-in only)."""
        if self.visibility not in ("listed", "signed-in"):
            return None
        if not self.owner_username or not self.project_name:
            return None
        return f"/{self.owner_username}/{self.project_name}/{self.name}"


def may_read(item: SharedItem, principal: Principal | None, role: str | None) -> str:
    """ "ok", "sign-in" (an anonymous reader of a signed-in-only item) or "not-found"."""
    if role is not None:  # collaborators and admins see their project's items
        return "ok"
    if item.visibility == "disabled":
        return "not-found"
    if item.visibility == "signed-in" and principal is None:
        return "sign-in"
    return "ok"


def _owner_id() -> Any:
    return (
        select(ProjectUser.account_id)
        .where(ProjectUser.project_id == PublicPath.project_id, ProjectUser.role == "owner")
        .limit(1)
        .scalar_subquery()
    )


def _item_query() -> Any:
    owner = Account.__table__.alias("owner")
    author = Account.__table__.alias("author")
    return (
        select(
            *PublicPath.__table__.c,
            Project.title.label("project_title"),
            author.c.name.label("author"),
            owner.c.username.label("owner_username"),
            ProjectUrlName.name.label("project_name"),
        )
        .join(Project, Project.project_id == PublicPath.project_id)
        .outerjoin(author, author.c.account_id == PublicPath.created_by)
        .outerjoin(owner, owner.c.account_id == _owner_id())
        .outerjoin(ProjectUrlName, ProjectUrlName.project_id == PublicPath.project_id)
        .where(Project.deleted.is_(None))
    )


_ITEM_QUERY = _item_query()


def _item(row: Any) -> SharedItem:
    return SharedItem(
        id=row.id,
        project_id=row.project_id,
        path=row.path,
        name=row.name,
        description=row.description,
        license=row.license,
        visibility=cast(Visibility, row.visibility),
        created=row.created,
        last_edited=row.last_edited,
        views=row.views,
        project_title=row.project_title,
        author=row.author,
        owner_username=row.owner_username,
        project_name=row.project_name,
    )


def as_json(item: SharedItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "url": share_url(item.id),
        "vanity_url": item.vanity_url,
        "path": item.path,
        "name": item.name,
        "description": item.description,
        "license": item.license,
        "visibility": item.visibility,
        "created": item.created,
        "last_edited": item.last_edited,
        "views": item.views,
    }


class ViewCounter:
    """Page views per item, counted in memory and added to `public_paths.views` in one
    statement per flush (not one write per page view)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pending: dict[str, int] = {}

    def count(self, share_id: str) -> None:
        self._pending[share_id] = self._pending.get(share_id, 0) + 1

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            async with self.engine.begin() as conn:
                for share_id, views in sorted(pending.items()):
                    await conn.execute(
                        update(PublicPath)
                        .where(PublicPath.id == share_id)
                        .values(views=PublicPath.views + views)
                    )
        except BaseException:  # not saved: keep them for the next flush
            for share_id, views in pending.items():
                self._pending[share_id] = self._pending.get(share_id, 0) + views
            raise


class SharingService:
    def __init__(self, engine: AsyncEngine, projects: ProjectService) -> None:
        self.engine = engine
        self.projects = projects
        self.caching = False  # True while the listener is connected (see the module doc)
        self._items: dict[str, tuple[SharedItem, float]] = {}
        self._enabled: tuple[bool, float] | None = None

    # -- the readers' cache ---------------------------------------------------------

    def start_caching(self) -> None:
        self.caching = True

    def stop_caching(self) -> None:
        self.caching = False
        self.forget()

    def forget(self, payload: str = "*") -> None:
        """NOTIFY callback: drop the item named (or everything, for "*")."""
        if payload == "*":
            self._items.clear()
            self._enabled = None
        else:
            self._items.pop(payload, None)

    def forget_project(self, payload: str) -> None:
        """PROJECT_ACCESS callback: the project was deleted or its members changed."""
        for share_id in [
            k for k, (item, _) in self._items.items() if str(item.project_id) == payload
        ]:
            del self._items[share_id]

    # -- publishing (collaborators) ----------------------------------------------

    async def publish(
        self, principal: Principal, project_id: uuid.UUID, body: dict[str, Any]
    ) -> SharedItem:
        clean = validate_fields(body, creating=True)
        share_id = new_share_id()
        async with self.engine.begin() as conn:
            await self.projects.access(principal, project_id, conn=conn)
            count = await conn.scalar(
                select(func.count()).where(PublicPath.project_id == project_id)
            )
            if (count or 0) >= MAX_PER_PROJECT:
                raise Conflict(f"a project publishes at most {MAX_PER_PROJECT} paths")
            await self._write(
                conn,
                pg_insert(PublicPath).values(
                    id=share_id, project_id=project_id, created_by=principal.account_id, **clean
                ),
            )
            await notify(conn, SHARE_CHANNEL, share_id)
            await events.record(
                conn,
                "share.published",
                account_id=principal.account_id,
                project_id=project_id,
                path=clean["path"],
                visibility=clean["visibility"],
            )
        return await self._get(project_id, share_id)

    async def for_project(self, principal: Principal, project_id: uuid.UUID) -> list[SharedItem]:
        await self.projects.access(principal, project_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                _item_query()
                .where(PublicPath.project_id == project_id)
                .order_by(PublicPath.path, PublicPath.id)
            )
            return [_item(row) for row in rows]

    async def edit(
        self, principal: Principal, project_id: uuid.UUID, share_id: str, body: dict[str, Any]
    ) -> SharedItem:
        clean = validate_fields(body, creating=False)
        async with self.engine.begin() as conn:
            await self.projects.access(principal, project_id, conn=conn)
            result = await self._write(
                conn,
                update(PublicPath)
                .where(PublicPath.id == share_id, PublicPath.project_id == project_id)
                .values(last_edited=datetime.now(UTC), **clean),
            )
            if result.rowcount == 0:
                raise NotFound(NO_SUCH_ITEM)
            await notify(conn, SHARE_CHANNEL, share_id)
            await events.record(
                conn,
                "share.edited",
                account_id=principal.account_id,
                project_id=project_id,
                id=share_id,
                changed=sorted(clean),
            )
        self.forget(share_id)
        return await self._get(project_id, share_id)

    async def unpublish(self, principal: Principal, project_id: uuid.UUID, share_id: str) -> None:
        async with self.engine.begin() as conn:
            await self.projects.access(principal, project_id, conn=conn)
            path = await conn.scalar(
                delete(PublicPath)
                .where(PublicPath.id == share_id, PublicPath.project_id == project_id)
                .returning(PublicPath.path)
            )
            if path is None:
                raise NotFound(NO_SUCH_ITEM)
            await notify(conn, SHARE_CHANNEL, share_id)
            await events.record(
                conn,
                "share.unpublished",
                account_id=principal.account_id,
                project_id=project_id,
                path=path,
            )
        self.forget(share_id)

    async def _write(self, conn: AsyncConnection, statement: Any) -> Any:
        try:
            async with conn.begin_nested():
                return await conn.execute(statement)
        except IntegrityError as exc:
            text = str(exc.orig)
            if "uq_public_paths_project_id_path" in text:
                raise Conflict("that path is already published in this project") from None
            if "uq_public_paths_project_id_name" in text:
                raise Conflict("another published item of this project has that name") from None
            raise

    async def _get(self, project_id: uuid.UUID, share_id: str) -> SharedItem:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    _item_query().where(
                        PublicPath.id == share_id, PublicPath.project_id == project_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound(NO_SUCH_ITEM)
        return _item(row)

    # -- reading (anyone; the views apply `may_read`) ----------------------------

    async def enabled(self, conn: AsyncConnection | None = None) -> bool:
        now = time.monotonic()
        if self.caching and self._enabled is not None and self._enabled[1] > now:
            return self._enabled[0]
        query = select(SiteSetting.value).where(SiteSetting.name == SHARING_ENABLED)
        if conn is None:
            async with self.engine.connect() as own:
                value = await own.scalar(query)
        else:
            value = await conn.scalar(query)
        if self.caching:
            self._enabled = (value is not False, now + CACHE_SECONDS)
        return value is not False

    async def item(self, share_id: str) -> SharedItem:
        """The item with this id, or NotFound (also while sharing is off site-wide)."""
        if not share_id or len(share_id) > 40:
            raise NotFound(NO_SUCH_ITEM)
        now = time.monotonic()
        cached = self._items.get(share_id) if self.caching else None
        if cached is not None and cached[1] > now and await self.enabled():
            return cached[0]
        async with self.engine.connect() as conn:
            if not await self.enabled(conn):
                raise NotFound(NO_SUCH_ITEM)
            row = (await conn.execute(_ITEM_QUERY.where(PublicPath.id == share_id))).first()
        if row is None:
            raise NotFound(NO_SUCH_ITEM)
        item = _item(row)
        if self.caching:
            self._items[share_id] = (item, now + CACHE_SECONDS)
        return item

    async def by_name(self, project_id: uuid.UUID, share_name: str) -> SharedItem:
        """A listed or signed-in-only item by its project and name (the vanity URL's
        owner and project names are resolved by `services.url_names`)."""
        async with self.engine.connect() as conn:
            if not await self.enabled(conn):
                raise NotFound(NO_SUCH_ITEM)
            row = (
                await conn.execute(
                    _item_query().where(
                        PublicPath.project_id == project_id,
                        PublicPath.name == share_name,
                        PublicPath.visibility.in_(("listed", "signed-in")),
                    )
                )
            ).first()
        if row is None:
            raise NotFound(NO_SUCH_ITEM)
        return _item(row)

    async def listed(
        self, *, search: str = "", offset: int = 0, limit: int = 50
    ) -> tuple[list[SharedItem], bool]:
        """Listed items, newest first, matching `search` in name, description or project
        title; (items, more)."""
        query = _item_query().where(PublicPath.visibility == "listed")
        if search.strip():
            query = query.where(
                mentions(search, PublicPath.name, PublicPath.description, Project.title)
            )
        query = query.order_by(PublicPath.created.desc(), PublicPath.id).offset(offset)
        async with self.engine.connect() as conn:
            if not await self.enabled(conn):
                return [], False
            rows = (await conn.execute(query.limit(limit + 1))).all()
        return [_item(row) for row in rows[:limit]], len(rows) > limit

    async def published_paths(self, project_id: uuid.UUID) -> list[tuple[str, str]]:
        """(path, id) of every item of a project (for collaborators' file listing)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(PublicPath.path, PublicPath.id).where(PublicPath.project_id == project_id)
            )
            return [(row.path, row.id) for row in rows]

    # -- admin --------------------------------------------------------------------

    async def set_enabled(self, admin_id: uuid.UUID, enabled: Any) -> bool:
        if not isinstance(enabled, bool):
            raise BadRequest("enabled must be true or false")
        async with self.engine.begin() as conn:
            await conn.execute(
                pg_insert(SiteSetting)
                .values(name=SHARING_ENABLED, value=enabled)
                .on_conflict_do_update(
                    index_elements=["name"], set_={"value": enabled, "changed": func.now()}
                )
            )
            await notify(conn, SHARE_CHANNEL, "*")
            await events.record(conn, "share.site_enabled", account_id=admin_id, enabled=enabled)
        self.forget()
        return enabled

    async def admin_unpublish(self, admin_id: uuid.UUID, share_id: str) -> None:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    delete(PublicPath)
                    .where(PublicPath.id == share_id)
                    .returning(PublicPath.project_id, PublicPath.path)
                )
            ).first()
            if row is None:
                raise NotFound(NO_SUCH_ITEM)
            await notify(conn, SHARE_CHANNEL, share_id)
            await events.record(
                conn,
                "share.unpublished",
                account_id=admin_id,
                project_id=row.project_id,
                path=row.path,
                by_admin=True,
            )
        self.forget(share_id)
