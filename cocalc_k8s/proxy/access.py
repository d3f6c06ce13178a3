"""Who may reach which project on the content origin: a short-lived cache of roles, dropped
when a project's members change (NOTIFY), and the open tunnels to close when access ends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.services.connections import Connections
from cocalc_k8s.services.projects import ProjectService, Role

TTL = 5.0  # seconds: the longest a removed collaborator keeps access without a NOTIFY
RECHECK_EVERY = 2.0

Key = tuple[uuid.UUID, uuid.UUID]  # (account_id, project_id)


class AccessCache:
    def __init__(
        self,
        projects: ProjectService,
        *,
        ttl: float = TTL,
        connections: Connections | None = None,
    ) -> None:
        self.projects = projects
        self.ttl = ttl
        self.connections = connections or Connections()  # open tunnels count as clients
        self._roles: dict[Key, tuple[float, Role | None]] = {}
        self._inflight: dict[Key, asyncio.Future[Role | None]] = {}
        self._generation = 0  # bumped by every change of members: late loads are not kept
        self._tunnels: dict[Key, set[Callable[[], None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def role(self, account_id: uuid.UUID, project_id: uuid.UUID) -> Role | None:
        """The cached role. An expired entry is answered from the cache while one query
        refreshes it (a change of members drops entries at once, through NOTIFY), and
        concurrent misses share one query: expiry never sends a burst to the database."""
        key = (account_id, project_id)
        entry = self._roles.get(key)
        if entry is not None:
            if entry[0] <= time.monotonic() and key not in self._inflight:
                self._inflight[key] = asyncio.ensure_future(self._load(key))
            return entry[1]
        pending = self._inflight.get(key)
        if pending is None:
            pending = self._inflight[key] = asyncio.ensure_future(self._load(key))
        return await asyncio.shield(pending)

    async def _load(self, key: Key) -> Role | None:
        generation = self._generation
        try:
            role = await self.projects.role_of(*key)
            if generation == self._generation:  # no change of members meanwhile
                if len(self._roles) > 100_000:
                    self._roles.clear()
                self._roles[key] = (time.monotonic() + self.ttl, role)
            return role
        finally:
            self._inflight.pop(key, None)

    def members_changed(self, payload: str) -> None:
        """NOTIFY callback: a project's members changed; re-check its open tunnels now."""
        self._generation += 1
        try:
            project_id = uuid.UUID(payload)
        except ValueError:
            self._roles.clear()
            return
        for key in [k for k in self._roles if k[1] == project_id]:
            del self._roles[key]
        asyncio.get_running_loop().create_task(self._recheck(project_id))

    def account_changed(self, payload: str) -> None:
        """NOTIFY callback: an account's credentials changed (banned, made admin, password):
        its cached roles go, and its open tunnels are re-checked now."""
        self._generation += 1
        try:
            account_id = uuid.UUID(payload)
        except ValueError:
            self._roles.clear()
            return
        for key in [k for k in self._roles if k[0] == account_id]:
            del self._roles[key]
        asyncio.get_running_loop().create_task(self._recheck(account_id=account_id))

    def forget(self) -> None:
        """The listener reconnected: cached roles may have missed a change."""
        self._generation += 1
        self._roles.clear()

    def track(self, key: Key, close: Callable[[], None]) -> Callable[[], None]:
        """Remember an open tunnel; returns the function that forgets it again."""
        self._tunnels.setdefault(key, set()).add(close)
        counted = self.connections.opened("proxy", key[0])

        def untrack() -> None:
            counted()
            closers = self._tunnels.get(key)
            if closers is not None:
                closers.discard(close)
                if not closers:
                    del self._tunnels[key]

        return untrack

    async def _recheck(
        self, project_id: uuid.UUID | None = None, account_id: uuid.UUID | None = None
    ) -> None:
        for key in [
            k
            for k in self._tunnels
            if (project_id is None or k[1] == project_id)
            and (account_id is None or k[0] == account_id)
        ]:
            self._roles.pop(key, None)
            if await self.role(*key) is None:
                for close in list(self._tunnels.get(key, ())):
                    close()

    async def _recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_EVERY)
            await self._recheck()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._recheck_forever())

    async def close(self) -> None:
        await cancel(self._task)
