"""The hub's one file watcher: which files of which project changed, for everyone who cares
(the collaborative documents merge disk changes, TimeTravel records versions).

Two sources, one stream of `FileChanges`:

- a **running project**: its agent's inotify watcher (`cocalc_k8s.agent.watch`), pulled
  with long polls (the agent cannot call the hub). Nothing is polled on disk, so an idle
  project costs one pending request.
- a **stopped project** (or one whose agent does not answer): nothing but the hub should
  write its files, yet its storage is the hub's and an admin may change it, so the files
  someone `track`s (the open documents') are checked by their stamp every `tick`.

When the source of a project changes, or its agent cannot say exactly what changed (it
restarted, or the hub fell too far behind), subscribers get `everything=True`: take every
file you care about in that project as possibly changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.backends.base import AgentAddress, ProjectBackend
from cocalc_k8s.core.errors import DomainError, NotFound
from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.db.models import Project
from cocalc_k8s.services.files import ProjectFiles

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None  # (mtime_ns, size, inode); None: no such file


@dataclass(frozen=True, slots=True)
class FileChanges:
    project_id: uuid.UUID
    modified: frozenset[str] = frozenset()  # paths relative to the home
    deleted: frozenset[str] = frozenset()
    everything: bool = False  # anything may have changed: re-check what you care about


Subscriber = Callable[[FileChanges], Awaitable[None]]


class AgentWatch(Protocol):
    """What the watcher needs of the agent gateway (`backends.agent_client.AgentClient`,
    kept out of this module's imports: services know nothing of HTTP)."""

    async def watch(
        self, address: AgentAddress, *, after: int, instance: str, wait: float, max_bytes: int
    ) -> Any: ...


@dataclass(slots=True)
class _Project:
    follower: asyncio.Task[None] | None = None
    tracked: Counter[str] = field(default_factory=Counter)
    stamps: dict[str, Stamp] = field(default_factory=dict)


class FileWatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        backend: ProjectBackend,
        agents: AgentWatch,
        files: ProjectFiles,
        *,
        max_bytes: int,
        tick: float = 1.0,
        wait: float = 20.0,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.agents = agents
        self.files = files
        self.max_bytes = max_bytes
        self.tick = tick
        self.wait = wait
        self._subscribers: list[Subscriber] = []
        self._projects: dict[uuid.UUID, _Project] = {}
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def track(self, project_id: uuid.UUID, path: str) -> None:
        """Check `path` by its stamp while the project does not run (counted: as many
        `untrack` calls end it)."""
        self._projects.setdefault(project_id, _Project()).tracked[path] += 1

    def untrack(self, project_id: uuid.UUID, path: str) -> None:
        project = self._projects.get(project_id)
        if project is None:
            return
        project.tracked[path] -= 1
        if project.tracked[path] <= 0:
            del project.tracked[path]
            project.stamps.pop(path, None)

    def following(self, project_id: uuid.UUID) -> bool:
        """True while the project's agent watcher is the source of its changes."""
        project = self._projects.get(project_id)
        return project is not None and project.follower is not None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        await cancel(self._task)
        for project in self._projects.values():
            await cancel(project.follower)
            project.follower = None

    async def _run(self) -> None:
        while True:
            try:
                await self._once()
            except Exception:
                log.exception("the file watcher's round failed")
            await asyncio.sleep(self.tick)

    async def _running(self) -> set[uuid.UUID]:
        """Projects whose agent this hub can reach now. (From the projects' states, not
        `backend.running()`: that one adopts pods, the lifecycle manager's business.)"""
        async with self.engine.connect() as conn:
            ids = await conn.scalars(select(Project.project_id).where(Project.state == "running"))
            return {i for i in ids if self.backend.address(i) is not None}

    async def _once(self) -> None:
        running = await self._running()
        for project_id in running:
            project = self._projects.setdefault(project_id, _Project())
            if project.follower is None:
                project.follower = asyncio.get_running_loop().create_task(
                    self._follow(project_id, project)
                )
        for project_id, project in list(self._projects.items()):
            if project.follower is None:
                if project.tracked:
                    await self._poll(project_id, project)
                elif project_id not in running:
                    del self._projects[project_id]

    # -- a running project: its agent says what changed ------------------------------

    async def _follow(self, project_id: uuid.UUID, project: _Project) -> None:
        after, instance, failures = -1, "", 0
        try:
            while (address := self.backend.address(project_id)) is not None:
                try:
                    answer = await self.agents.watch(
                        address,
                        after=after,
                        instance=instance,
                        wait=self.wait,
                        max_bytes=self.max_bytes,
                    )
                    after, instance = int(answer["cursor"]), str(answer["instance"])
                    failures = 0
                except (DomainError, KeyError, TypeError, ValueError) as exc:
                    failures += 1
                    if failures >= 3:
                        log.info("project %s: its agent's watcher fails: %s", project_id, exc)
                        return  # back to stamps; the next round follows it again
                    await asyncio.sleep(self.tick)
                    continue
                changes = _changes(project_id, answer)
                if changes.modified or changes.deleted or changes.everything:
                    await self._tell(changes)
        finally:
            project.follower = None
            project.stamps.clear()
            with contextlib.suppress(Exception):
                await self._tell(FileChanges(project_id, everything=True))

    # -- a stopped project: the tracked files' stamps ------------------------------------

    async def _poll(self, project_id: uuid.UUID, project: _Project) -> None:
        try:
            fs = await self.files.fs(project_id)
        except DomainError:
            return
        paths = list(project.tracked)

        def stamps() -> dict[str, Stamp]:
            found: dict[str, Stamp] = {}
            for path in paths:
                try:
                    with fs.open_read(path) as handle:
                        st = os.fstat(handle.fileno())
                        found[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
                except NotFound:
                    found[path] = None
                except DomainError:
                    continue  # a directory, a path leaving the home: nothing to report
            return found

        now = await asyncio.to_thread(stamps)
        modified = {p for p, s in now.items() if p in project.stamps and project.stamps[p] != s}
        project.stamps.update(now)
        if modified:
            gone = frozenset(p for p in modified if now[p] is None)
            await self._tell(FileChanges(project_id, frozenset(modified) - gone, gone))

    async def _tell(self, changes: FileChanges) -> None:
        for subscriber in list(self._subscribers):
            try:
                await subscriber(changes)
            except Exception:
                log.exception("a file watcher subscriber failed")


def _changes(project_id: uuid.UUID, answer: dict[str, object]) -> FileChanges:
    latest: dict[str, bool] = {}  # path -> deleted (its last change wins)
    items = answer.get("changes")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            latest[item["path"]] = item.get("kind") == "deleted"
    return FileChanges(
        project_id,
        frozenset(p for p, gone in latest.items() if not gone),
        frozenset(p for p, gone in latest.items() if gone),
        everything=bool(answer.get("reset")),
    )
