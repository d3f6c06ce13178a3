"""Copies between projects: a request, a status, nothing half-done.

A request becomes one `copy_paths` row per destination (a batch shares a `batch_id`).
Rows are claimed by whichever hub has a free worker (``FOR UPDATE SKIP LOCKED``), copied in
a small thread pool of their own (`cocalc_k8s.core.tree_copy`, which never lets a half
copy show), and finished as ``done`` or ``failed`` with the reason. The hub copying a row
renews its ``heartbeat`` every second; a row whose heartbeat is older than `stale_after`
(its hub died) is queued again, up to `MAX_ATTEMPTS` times, and the next attempt first
removes what the last one staged. A hub that stops cleanly puts its running copies back
in the queue. A NOTIFY on `CHANNEL` (payload: the copy id) wakes the workers of every hub.

Who may do what: the requester must be a collaborator of the source and of every
destination (or an admin); a copy's status is visible to its requester, to the
collaborators of either project and to admins; anyone else gets 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import posixpath
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.errors import BadRequest, Conflict, DomainError, NotFound, RateLimited
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.core.projectfs import ProjectFS, rooted_at, split_path
from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.core.tree_copy import Cancelled, Progress, copy_between, remove_staging
from cocalc_k8s.db.models import CopyPath, Project, ProjectUser
from cocalc_k8s.db.notify import notify
from cocalc_k8s.services import events
from cocalc_k8s.services.disk_quota import DiskQuota
from cocalc_k8s.services.files import ProjectFiles
from cocalc_k8s.services.projects import ProjectService
from cocalc_k8s.services.sharing import NO_SUCH_ITEM, SharingService, may_read

log = logging.getLogger(__name__)

CHANNEL = "cocalc_copies"
NO_SUCH_COPY = "no such copy"
MAX_ATTEMPTS = 3
MAX_DESTINATIONS = 200
REQUESTS_PER_MINUTE = 30  # per account; a batch counts once
MAX_PENDING = 1000  # queued or running copies per account
RECENT = 50
HEARTBEAT = 1.0
SWEEP = 5.0  # how often a hub looks for queued rows it was not told about, and stale ones


class CopyService:
    def __init__(
        self,
        engine: AsyncEngine,
        files: ProjectFiles,
        projects: ProjectService,
        disk_quota: DiskQuota,
        *,
        max_bytes: int,
        workers: int = 2,
        stale_after: float = 15.0,
    ) -> None:
        self.engine = engine
        self.files = files
        self.projects = projects
        self.disk_quota = disk_quota
        self.sharing = SharingService(engine, projects)  # stateless: reads public_paths
        self.max_bytes = max_bytes
        self.workers = workers
        self.stale_after = stale_after
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy")
        self._running: dict[uuid.UUID, Progress] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False

    # -- requests -----------------------------------------------------------------

    async def request(self, principal: Principal, body: Any) -> list[uuid.UUID]:
        """Queue the copies a request asks for (see the API); returns their ids."""
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        published = body.get("public_path_id")
        if published is not None:
            src, src_path = await self._published_source(principal, published, body)
        else:
            src = _project_id(body.get("src_project_id"), "src_project_id")
            src_path = _path(body.get("src_path"), "src_path")
        dst_path = _path(body.get("dst_path"), "dst_path")
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise BadRequest("overwrite must be true or false")
        if "dst_project_ids" in body:
            raw = body["dst_project_ids"]
            if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_DESTINATIONS:
                raise BadRequest(f"dst_project_ids must list 1 to {MAX_DESTINATIONS} projects")
            destinations = list(dict.fromkeys(_project_id(x, "dst_project_ids") for x in raw))
        else:
            destinations = [_project_id(body.get("dst_project_id"), "dst_project_id")]
        async with self.engine.begin() as conn:
            for project_id in destinations if published else (src, *destinations):
                await self.projects.access(principal, project_id, conn=conn)
            await self._check_rate(conn, principal.account_id, len(destinations))
            batch = uuid.uuid4()
            ids = [uuid.uuid4() for _ in destinations]
            await conn.execute(
                insert(CopyPath),
                [
                    {
                        "copy_id": copy_id,
                        "batch_id": batch,
                        "account_id": principal.account_id,
                        "src_project_id": src,
                        "src_path": src_path,
                        "dst_project_id": dst,
                        "dst_path": dst_path,
                        "overwrite": overwrite,
                        "public_path_id": published,
                    }
                    for copy_id, dst in zip(ids, destinations, strict=True)
                ],
            )
            await notify(conn, CHANNEL, str(batch))
        self._wake.set()
        return ids

    async def _published_source(
        self, principal: Principal, share_id: Any, body: dict[str, Any]
    ) -> tuple[uuid.UUID, str]:
        """(project, path inside the item) of a published item the principal may read;
        NotFound for anything else, as on the share site."""
        if "src_project_id" in body:
            raise BadRequest("give public_path_id or src_project_id, not both")
        if not isinstance(share_id, str):
            raise NotFound(NO_SUCH_ITEM)
        item = await self.sharing.item(share_id)
        role = await self.projects.role_of(principal.account_id, item.project_id)
        if may_read(item, principal, role) != "ok":
            raise NotFound(NO_SUCH_ITEM)
        return item.project_id, _inner_path(body.get("src_path", ""))

    async def _check_rate(self, conn: Any, account_id: uuid.UUID, count: int) -> None:
        recent, pending = (
            await conn.execute(
                select(
                    func.count(func.distinct(CopyPath.batch_id)).filter(
                        CopyPath.created > func.now() - timedelta(minutes=1)
                    ),
                    func.count().filter(CopyPath.state.in_(("queued", "copying"))),
                ).where(CopyPath.account_id == account_id)
            )
        ).one()
        if recent >= REQUESTS_PER_MINUTE:
            raise RateLimited(
                f"at most {REQUESTS_PER_MINUTE} copy requests a minute; try again shortly",
                retry_after=60,
            )
        if pending + count > MAX_PENDING:
            raise RateLimited(
                f"you have {pending} copies waiting; at most {MAX_PENDING} at once",
                retry_after=60,
            )

    async def get(self, principal: Principal, copy_id: uuid.UUID) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(CopyPath).where(self._visible(principal, copy_id)))
            ).first()
        if row is None:
            raise NotFound(NO_SUCH_COPY)
        return _public(row)

    async def recent(self, principal: Principal, project_id: uuid.UUID) -> list[dict[str, Any]]:
        """The newest copies into or out of a project the principal may see."""
        await self.projects.access(principal, project_id)
        query = (
            select(CopyPath)
            .where(
                or_(CopyPath.src_project_id == project_id, CopyPath.dst_project_id == project_id)
            )
            .order_by(CopyPath.created.desc())
            .limit(RECENT)
        )
        async with self.engine.connect() as conn:
            return [_public(row) for row in (await conn.execute(query)).all()]

    async def cancel(self, principal: Principal, copy_id: uuid.UUID) -> dict[str, Any]:
        """Cancel a queued copy at once, a running one as soon as its hub sees it (its
        state turns ``failed``, error ``cancelled``, with nothing left behind). 409 for a
        copy that has ended."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(CopyPath.state)
                    .where(self._visible(principal, copy_id))
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise NotFound(NO_SUCH_COPY)
            if row.state in ("done", "failed"):
                raise Conflict(f"the copy has already ended ({row.state})")
            values: dict[str, Any] = {"cancel_requested": True}
            if row.state == "queued":
                values |= {"state": "failed", "error": "cancelled", "finished": func.now()}
            await conn.execute(update(CopyPath).where(CopyPath.copy_id == copy_id).values(values))
            await notify(conn, CHANNEL, str(copy_id))
        progress = self._running.get(copy_id)
        if progress is not None:
            progress.cancel.set()
        return await self.get(principal, copy_id)

    def _visible(self, principal: Principal, copy_id: uuid.UUID) -> Any:
        where = CopyPath.copy_id == copy_id
        if principal.is_admin:
            return where
        member = (
            select(ProjectUser.project_id)
            .join(Project, Project.project_id == ProjectUser.project_id)
            .where(ProjectUser.account_id == principal.account_id, Project.deleted.is_(None))
        )
        return and_(
            where,
            or_(
                CopyPath.account_id == principal.account_id,
                CopyPath.src_project_id.in_(member),
                CopyPath.dst_project_id.in_(member),
            ),
        )

    # -- workers ------------------------------------------------------------------

    async def start(self) -> None:
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    def notified(self, payload: str = "") -> None:
        """A NOTIFY on `CHANNEL`: new copies, or a cancellation."""
        self._wake.set()

    async def close(self) -> None:
        """Stop copying; running copies go back to the queue for the next hub start."""
        self._closing = True
        if self._dispatcher is not None:
            await cancel(self._dispatcher)
        for progress in self._running.values():
            progress.cancel.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=True)

    async def _dispatch(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._requeue_stale()
                await self._cancel_requested()
                while len(self._running) < self.workers:
                    row = await self._claim()
                    if row is None:
                        break
                    self._running[row.copy_id] = Progress()
                    task = asyncio.get_running_loop().create_task(self._run(row))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                log.exception("copies: the dispatcher failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SWEEP)

    async def _claim(self) -> Row[Any] | None:
        oldest = (
            select(CopyPath.copy_id)
            .where(CopyPath.state == "queued")
            .order_by(CopyPath.created)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with self.engine.begin() as conn:
            return (
                await conn.execute(
                    update(CopyPath)
                    .where(CopyPath.copy_id == oldest)
                    .values(
                        state="copying",
                        heartbeat=func.now(),
                        attempts=CopyPath.attempts + 1,
                        bytes_done=0,
                        files_done=0,
                    )
                    .returning(CopyPath)
                )
            ).first()

    async def _requeue_stale(self) -> None:
        stale = and_(
            CopyPath.state == "copying",
            CopyPath.heartbeat < func.now() - timedelta(seconds=self.stale_after),
        )
        if self._running:
            stale = and_(stale, CopyPath.copy_id.not_in(list(self._running)))
        async with self.engine.begin() as conn:
            await conn.execute(
                update(CopyPath)
                .where(stale, CopyPath.attempts >= MAX_ATTEMPTS)
                .values(
                    state="failed",
                    finished=func.now(),
                    error=f"the copy was interrupted {MAX_ATTEMPTS} times; nothing was copied",
                )
            )
            await conn.execute(
                update(CopyPath).where(stale).values(state="queued", cancel_requested=False)
            )

    async def _cancel_requested(self) -> None:
        if not self._running:
            return
        async with self.engine.connect() as conn:
            ids = (
                await conn.execute(
                    select(CopyPath.copy_id).where(
                        CopyPath.copy_id.in_(list(self._running)), CopyPath.cancel_requested
                    )
                )
            ).scalars()
            for copy_id in ids:
                self._running[copy_id].cancel.set()

    async def _run(self, row: Row[Any]) -> None:
        copy_id: uuid.UUID = row.copy_id
        progress = self._running[copy_id]
        outcome: dict[str, Any] = {"state": "done", "error": None}
        try:
            src = await self.files.fs(row.src_project_id)
            dst = await self.files.fs(row.dst_project_id)
            left = await self.disk_quota.room(row.dst_project_id)
            item_path = await self._item_path(row)
            job = functools.partial(
                copy_between if item_path is None else functools.partial(_published, item_path),
                src,
                row.src_path,
                dst,
                row.dst_path,
                copy_id=str(copy_id),
                overwrite=row.overwrite,
                progress=progress,
                max_bytes=self.max_bytes,
                room=lambda: left,
            )
            work = asyncio.get_running_loop().run_in_executor(self._pool, job)
            while True:
                done, _ = await asyncio.wait({work}, timeout=HEARTBEAT)
                if done:
                    work.result()
                    break
                await self._beat(copy_id, progress)
        except Cancelled:
            if self._closing:
                outcome = {"state": "queued", "error": None}
            else:
                outcome = {"state": "failed", "error": "cancelled"}
        except DomainError as exc:
            outcome = {"state": "failed", "error": exc.message}
        except Exception:
            log.exception("copy %s failed", copy_id)
            outcome = {"state": "failed", "error": "internal error"}
        finally:
            self._running.pop(copy_id, None)
            self.disk_quota.wrote(row.dst_project_id, progress.bytes_done)
        if outcome["state"] == "queued":
            await asyncio.to_thread(remove_staging, dst, row.dst_path, str(copy_id))
        await self._finish(row, progress, outcome)
        self._wake.set()

    async def _item_path(self, row: Row[Any]) -> str | None:
        """For a copy of a published item: the item's path, checked again now (it may
        have been unpublished, or disabled, since the request). None for other copies."""
        if row.public_path_id is None:
            return None
        try:
            item = await self.sharing.item(row.public_path_id)
        except NotFound:
            raise NotFound("the published item is no longer published") from None
        if item.project_id != row.src_project_id:
            raise NotFound("the published item is no longer published")
        role = (
            None
            if row.account_id is None
            else await self.projects.role_of(row.account_id, item.project_id)
        )
        # As `may_read` for a signed-in reader: only a disabled item is closed to them.
        if item.visibility == "disabled" and role is None:
            raise NotFound("the published item is no longer published")
        return item.path

    async def _beat(self, copy_id: uuid.UUID, progress: Progress) -> None:
        async with self.engine.begin() as conn:
            wanted = (
                await conn.execute(
                    update(CopyPath)
                    .where(CopyPath.copy_id == copy_id)
                    .values(heartbeat=func.now(), **_counts(progress))
                    .returning(CopyPath.cancel_requested)
                )
            ).scalar_one_or_none()
        if wanted:
            progress.cancel.set()

    async def _finish(self, row: Row[Any], progress: Progress, outcome: dict[str, Any]) -> None:
        values = dict(outcome, **_counts(progress), skipped=progress.skipped)
        if outcome["state"] != "queued":
            values["finished"] = func.now()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(CopyPath).where(CopyPath.copy_id == row.copy_id).values(values)
            )
            if outcome["state"] == "done":
                common = {
                    "copy_id": str(row.copy_id),
                    "files": progress.files_done,
                    "bytes": progress.bytes_done,
                }
                await events.record(
                    conn,
                    "copy.out",
                    account_id=row.account_id,
                    project_id=row.src_project_id,
                    path=row.src_path,
                    to_project_id=str(row.dst_project_id),
                    to=row.dst_path,
                    **common,
                )
                await events.record(
                    conn,
                    "copy.in",
                    account_id=row.account_id,
                    project_id=row.dst_project_id,
                    path=row.dst_path,
                    from_project_id=str(row.src_project_id),
                    source=row.src_path,
                    **common,
                )


def _published(
    item_path: str, src: ProjectFS, inner: str, dst: ProjectFS, dst_path: str, **options: Any
) -> None:
    """Copy from inside a published item: the source is rooted at the item's folder (or,
    for a published file, at its folder with only its name reachable), and dotfiles,
    which the share site never shows, are left out."""
    with src.locate(item_path, follow_last=True) as loc:
        if loc.st is None:
            raise NotFound("the published item is no longer there")
        is_dir = stat.S_ISDIR(loc.st.st_mode)
    folder, only = (item_path, None) if is_dir else posixpath.split(item_path)
    if only is not None:
        if inner not in ("", only):
            raise NotFound(NO_SUCH_ITEM)
        inner = only
    elif inner == "" and item_path:  # the whole published folder
        folder, inner = posixpath.split(item_path)
    with rooted_at(src, folder) as root:
        copy_between(root, inner, dst, dst_path, skip_hidden=True, **options)


def _inner_path(raw: Any) -> str:
    """A path inside a published item: relative, no `..`, no dotfiles (NotFound)."""
    if not isinstance(raw, str) or raw.startswith("/") or "\\" in raw:
        raise NotFound(NO_SUCH_ITEM)
    try:
        parts = split_path(raw)
    except DomainError:
        raise NotFound(NO_SUCH_ITEM) from None
    if any(part == ".." or part.startswith(".") for part in parts):
        raise NotFound(NO_SUCH_ITEM)
    return "/".join(parts)


def _counts(progress: Progress) -> dict[str, int]:
    return {
        "bytes_done": progress.bytes_done,
        "bytes_total": progress.bytes_total,
        "files_done": progress.files_done,
        "files_total": progress.files_total,
    }


def _public(row: Row[Any]) -> dict[str, Any]:
    return {
        "copy_id": row.copy_id,
        "state": row.state,
        "bytes_done": row.bytes_done,
        "bytes_total": row.bytes_total,
        "files_done": row.files_done,
        "files_total": row.files_total,
        "error": row.error,
        "skipped": row.skipped,
        "src_project_id": row.src_project_id,
        "src_path": row.src_path,
        "dst_project_id": row.dst_project_id,
        "dst_path": row.dst_path,
        "overwrite": row.overwrite,
        "public_path_id": row.public_path_id,
        "created": row.created,
        "finished": row.finished,
    }


def _project_id(value: Any, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value)) if isinstance(value, str) else _bad(name)
    except ValueError:
        return _bad(name)


def _bad(name: str) -> uuid.UUID:
    raise BadRequest(f"{name} must be a project id")


def _path(value: Any, name: str) -> str:
    if not isinstance(value, str) or not split_path(value):
        raise BadRequest(f"{name} must name a file or folder inside the project")
    return value


def parse_copy_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(NO_SUCH_COPY) from None
