"""The project lifecycle manager: turns start/stop requests into backend calls and keeps the
database's `state` true.

Requests are rows, not calls: `request()` writes `projects.requested`, a trigger sends a
NOTIFY, and the manager (in whichever hub runs the backend) acts on it. So a request from
another process, or an UPDATE typed in psql, is acted on at once. Operations on one
project are serialised by a per-project lock; every state change is stored in
`project_transitions` with its reason. Subscribers receive progress events while a
project starts.

The project log (`events` with the project's id) gets every request with who made it
(`project.start_requested`, …; no account when the hub itself asked), stops the hub
decided on (`project.stopped`, with the reason) and failures (`project.failed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.backends.base import AgentAddress, BackendError, ProjectBackend, ProjectSpec
from cocalc_k8s.core.errors import BadRequest, Unavailable
from cocalc_k8s.core.project_state import ACTIONS, ProjectState, can_move
from cocalc_k8s.core.quotas import DefaultQuotas, effective_quota, validate_quota
from cocalc_k8s.db.models import PROJECT_UIDS, Project, ProjectTransition, SiteSetting
from cocalc_k8s.services import events

log = logging.getLogger(__name__)

REQUESTS_CHANNEL = "cocalc_project_requests"
UID_LOCK = 7_004
Event = dict[str, Any]
# Asked before every start: a reason the project cannot start now (it then fails with it),
# or None. E.g. an interpreter projects cannot execute, a home over its disk quota.
StartCheck = Callable[[ProjectSpec], Awaitable[str | None]]


class LifecycleManager:
    def __init__(
        self, engine: AsyncEngine, backend: ProjectBackend, *, projects_root: Path
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.projects_root = projects_root
        # Weak: a project's lock lives while someone holds or awaits it, then goes.
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._subscribers: defaultdict[uuid.UUID, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._last_progress: dict[uuid.UUID, Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.leading = False
        self.start_checks: list[StartCheck] = []
        backend.on_exit(self._on_backend_exit)

    def _lock(self, project_id: uuid.UUID) -> asyncio.Lock:
        lock = self._locks.get(project_id)
        if lock is None:
            lock = self._locks[project_id] = asyncio.Lock()
        return lock

    def home(self, project_id: uuid.UUID) -> Path:
        return self.projects_root / str(project_id)

    # -- requests ---------------------------------------------------------------------

    async def request(
        self,
        project_id: uuid.UUID,
        action: str,
        *,
        account_id: uuid.UUID | None = None,
        reason: str | None = None,
    ) -> None:
        """Record a start/stop/restart request, and in the project log who made it (None:
        the hub itself, for `reason`); the NOTIFY trigger wakes the manager."""
        if action not in ACTIONS:
            raise BadRequest(f"action must be one of {', '.join(ACTIONS)}")
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Project)
                .where(Project.project_id == project_id)
                .values(requested=action, requested_at=datetime.now(UTC))
            )
            extra = {"reason": reason} if reason else {}
            await events.record(
                conn,
                f"project.{action}_requested",
                account_id=account_id,
                project_id=project_id,
                **extra,
            )

    def on_request_notification(self, payload: str) -> None:
        """Listener callback for `cocalc_project_requests`."""
        try:
            project_id = uuid.UUID(payload)
        except ValueError:
            return
        if self.leading:
            self._spawn(self.handle_request(project_id))

    def on_listening(self) -> None:
        """Listener (re)connected: requests may have been written while it was away."""
        if self.leading:
            self._spawn(self.handle_pending())

    def on_leadership(self, leading: bool) -> None:
        """Only the leader (one hub per database) acts on requests. A new leader first
        makes the database agree with its backend, then acts on pending requests."""
        self.leading = leading
        if leading:

            async def catch_up() -> None:
                await self.reconcile()
                await self.handle_pending()

            self._spawn(catch_up())

    async def handle_pending(self) -> None:
        """Act on requests written while no manager listened (e.g. during a restart)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(Project.project_id).where(
                    Project.requested.is_not(None), Project.deleted.is_(None)
                )
            )
            pending = [row.project_id for row in rows]
        for project_id in pending:
            self._spawn(self.handle_request(project_id))

    async def handle_request(self, project_id: uuid.UUID) -> None:
        async with self._lock(project_id):
            async with self.engine.begin() as conn:
                action = (
                    await conn.execute(
                        select(Project.requested)
                        .where(Project.project_id == project_id)
                        .with_for_update()
                    )
                ).scalar_one_or_none()
                if action is None:
                    return
                await conn.execute(
                    update(Project).where(Project.project_id == project_id).values(requested=None)
                )
            await self._perform(project_id, action)
            # Followers of `?wait=1` stop here, whether or not anything had to change.
            self._publish(
                project_id, {"state": (await self.state(project_id)).value, "done": action}
            )

    async def _perform(self, project_id: uuid.UUID, action: str | None) -> None:
        if action in ("stop", "restart"):
            await self._stop(project_id, reason=f"{action} requested")
        if action in ("start", "restart"):
            await self._start(project_id)

    # -- transitions ------------------------------------------------------------------

    async def state(self, project_id: uuid.UUID) -> ProjectState:
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(select(Project.state).where(Project.project_id == project_id))
            ).scalar_one()
        return ProjectState(value)

    async def _set_state(
        self, project_id: uuid.UUID, target: ProjectState, *, reason: str | None = None
    ) -> bool:
        """Move to `target` if the state machine allows it; store the transition."""
        async with self.engine.begin() as conn:
            current = ProjectState(
                (
                    await conn.execute(
                        select(Project.state)
                        .where(Project.project_id == project_id)
                        .with_for_update()
                    )
                ).scalar_one()
            )
            if current == target or not can_move(current, target):
                return False
            now = datetime.now(UTC)
            values: dict[str, Any] = {"state": target.value, "state_changed": now}
            values["state_error"] = reason if target == ProjectState.FAILED else None
            if target == ProjectState.RUNNING:
                values["last_started"] = now
                values["last_active"] = now
            await conn.execute(
                update(Project).where(Project.project_id == project_id).values(**values)
            )
            await conn.execute(
                insert(ProjectTransition).values(
                    project_id=project_id,
                    from_state=current.value,
                    to_state=target.value,
                    reason=reason,
                )
            )
            if target == ProjectState.FAILED:
                await events.record(
                    conn, "project.failed", account_id=None, project_id=project_id, error=reason
                )
        self._publish(project_id, {"state": target.value, "error": values["state_error"]})
        return True

    async def _start(self, project_id: uuid.UUID) -> None:
        if not await self._set_state(project_id, ProjectState.STARTING, reason="start"):
            return  # already starting or running
        self._last_progress.pop(project_id, None)
        try:
            spec = await self._spec(project_id)
            for check in self.start_checks:
                if refusal := await check(spec):
                    await self._set_state(project_id, ProjectState.FAILED, reason=refusal)
                    return
            await self.backend.start(spec, lambda m, p: self._progress(project_id, m, p))
        except BackendError as exc:
            await self._set_state(project_id, ProjectState.FAILED, reason=str(exc))
            return
        except Exception as exc:
            log.exception("starting project %s failed", project_id)
            await self._set_state(
                project_id, ProjectState.FAILED, reason=f"internal error: {type(exc).__name__}"
            )
            return
        await self._store_resolved(project_id, spec)
        await self._set_state(project_id, ProjectState.RUNNING, reason="started")
        self._last_progress.pop(project_id, None)

    async def _store_resolved(self, project_id: uuid.UUID, spec: ProjectSpec) -> None:
        """Keep the names the backend chose, so a later change of scheme finds them."""
        chosen = self.backend.resolved(project_id)
        new = {k: v for k, v in chosen.items() if spec.resolved.get(k) != v}
        if new:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(Project)
                    .where(Project.project_id == project_id)
                    .values(resolved=Project.resolved.op("||")(new))
                )

    async def _stop(self, project_id: uuid.UUID, *, reason: str) -> None:
        state = await self.state(project_id)
        if state == ProjectState.STOPPED:
            return
        if state == ProjectState.FAILED:
            await self.backend.stop(project_id)
            await self._set_state(project_id, ProjectState.STOPPED, reason=reason)
            return
        await self._set_state(project_id, ProjectState.STOPPING, reason=reason)
        try:
            await self.backend.stop(project_id)
        except BackendError as exc:
            await self._set_state(project_id, ProjectState.FAILED, reason=str(exc))
            return
        await self._set_state(project_id, ProjectState.STOPPED, reason=reason)

    async def _spec(self, project_id: uuid.UUID) -> ProjectSpec:
        async with self.engine.connect() as conn:
            own, resolved = (
                await conn.execute(
                    select(Project.quota, Project.resolved).where(Project.project_id == project_id)
                )
            ).one()
            defaults = (
                await conn.execute(
                    select(SiteSetting.value).where(SiteSetting.name == "default_quotas")
                )
            ).scalar_one_or_none()
        site = defaults if isinstance(defaults, dict) else {}
        quota = effective_quota(site, own)
        uid = await self._uid(project_id) if self.backend.wants_uid else None
        over = validate_quota({k: site[k] for k in ("cpu_oc", "mem_oc") if k in site}, site=True)
        return ProjectSpec(
            project_id=project_id,
            home=self.home(project_id),
            quota=quota,
            uid=uid,
            cpu_oc=over.get("cpu_oc", DefaultQuotas.cpu_oc),
            mem_oc=over.get("mem_oc", DefaultQuotas.mem_oc),
            resolved=resolved,
        )

    async def _uid(self, project_id: uuid.UUID) -> int:
        """The project's own uid: drawn once from a sequence (never reused, even after a
        purge), kept in `projects.resolved`."""
        async with self.engine.begin() as conn:
            await conn.execute(select(func.pg_advisory_xact_lock(UID_LOCK)))
            resolved = (
                await conn.execute(select(Project.resolved).where(Project.project_id == project_id))
            ).scalar_one()
            if isinstance(resolved.get("uid"), int):
                return int(resolved["uid"])
            uid = int((await conn.execute(select(PROJECT_UIDS.next_value()))).scalar_one())
            await conn.execute(
                update(Project)
                .where(Project.project_id == project_id)
                .values(resolved=Project.resolved.op("||")({"uid": uid}))
            )
        return uid

    async def stop_because(self, project_id: uuid.UUID, reason: str, **data: Any) -> None:
        """Stop a project on the hub's own initiative (idle, deleted), with the reason;
        the project log gets `project.stopped` with the reason and `data`."""
        async with self._lock(project_id):
            if await self.state(project_id) != ProjectState.STOPPED:
                async with self.engine.begin() as conn:
                    await events.record(
                        conn,
                        "project.stopped",
                        account_id=None,
                        project_id=project_id,
                        reason=reason,
                        **data,
                    )
            await self._stop(project_id, reason=reason)

    async def fail_stuck(self, project_id: uuid.UUID, reason: str) -> None:
        """A start or stop that never finished: clean up and mark the project failed."""
        async with self._lock(project_id):
            with contextlib.suppress(BackendError):
                await self.backend.stop(project_id)
            await self._set_state(project_id, ProjectState.FAILED, reason=reason)

    def _on_backend_exit(self, project_id: uuid.UUID, reason: str) -> None:
        async def mark_failed() -> None:
            async with self._lock(project_id):
                await self._set_state(project_id, ProjectState.FAILED, reason=reason)

        self._spawn(mark_failed())

    # -- start-up and shutdown --------------------------------------------------------

    async def reconcile(self) -> None:
        """After a (re)start of the hub: the database must agree with the backend.

        Projects the backend runs are adopted as running; projects the database calls
        active that do not run are marked stopped (with the reason); no project is left
        alive and "stopped"."""
        alive = await self.backend.running()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Project.project_id, Project.state, Project.deleted).where(
                        or_(
                            Project.state != ProjectState.STOPPED.value,
                            Project.project_id.in_(alive),
                        )
                    )
                )
            ).all()
        for row in rows:
            # Under the project's lock, with its state read again: a start or stop that ran
            # meanwhile has already made database and backend agree.
            async with self._lock(row.project_id):
                await self._reconcile_one(row.project_id, alive, deleted=row.deleted is not None)

    async def _reconcile_one(
        self, project_id: uuid.UUID, alive: set[uuid.UUID], *, deleted: bool
    ) -> None:
        state = await self.state(project_id)
        running = project_id in alive or self.backend.address(project_id) is not None
        if running:
            if state in (ProjectState.STOPPED, ProjectState.FAILED) or deleted:
                # Alive while the database says otherwise: the database wins.
                await self.backend.stop(project_id)
            elif state != ProjectState.RUNNING:
                await self._force_state(project_id, state, "adopted", ProjectState.RUNNING)
        elif state in (ProjectState.STARTING, ProjectState.RUNNING, ProjectState.STOPPING):
            await self._force_state(project_id, state, "the hub restarted")

    async def _force_state(
        self,
        project_id: uuid.UUID,
        current: ProjectState,
        reason: str,
        target: ProjectState = ProjectState.STOPPED,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Project)
                .where(Project.project_id == project_id)
                .values(state=target.value, state_changed=datetime.now(UTC))
            )
            await conn.execute(
                insert(ProjectTransition).values(
                    project_id=project_id,
                    from_state=current.value,
                    to_state=target.value,
                    reason=reason,
                )
            )

    async def close(self) -> None:
        """Stop background work, then every project this backend runs (local)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.backend.outlives_hub:  # pods keep running; the next hub adopts them
            await self.backend.close()
            return
        running = await self.backend.running()
        await self.backend.close()
        for project_id in running:
            await self._force_state(project_id, ProjectState.RUNNING, "the hub stopped")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- agent access and progress ----------------------------------------------------

    async def agent(
        self,
        project_id: uuid.UUID,
        *,
        start: bool = True,
        wait: float = 30,
        account_id: uuid.UUID | None = None,
        reason: str = "needed by a terminal or command",
    ) -> AgentAddress:
        """The running agent's address; starts the project first when asked (in the
        project log: by `account_id`, for `reason`)."""
        address = self.backend.address(project_id)
        if address is not None:
            return address
        if not start:
            raise Unavailable("the project is not running")
        async with self.subscribe(project_id) as events:
            await self.request(project_id, "start", account_id=account_id, reason=reason)
            try:
                async with asyncio.timeout(wait):
                    while (address := self.backend.address(project_id)) is None:
                        try:  # events wake us early; the address is re-checked regardless
                            event = await asyncio.wait_for(events.get(), 0.5)
                        except TimeoutError:
                            continue
                        if event.get("state") == ProjectState.FAILED.value:
                            raise Unavailable(f"the project failed to start: {event['error']}")
            except TimeoutError:
                raise Unavailable("the project did not start in time") from None
        return address

    def _progress(self, project_id: uuid.UUID, message: str, percent: int) -> None:
        event: Event = {
            "state": ProjectState.STARTING.value,
            "message": message,
            "percent": percent,
        }
        self._last_progress[project_id] = event
        self._publish(project_id, event)

    def last_progress(self, project_id: uuid.UUID) -> Event | None:
        return self._last_progress.get(project_id)

    def end_streams(self) -> None:
        """The hub is stopping: every open progress stream ends now."""
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait({"closing": True})

    def _publish(self, project_id: uuid.UUID, event: Event) -> None:
        for queue in self._subscribers.get(project_id, ()):
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, project_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers[project_id].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[project_id].discard(queue)
            if not self._subscribers[project_id]:
                del self._subscribers[project_id]
