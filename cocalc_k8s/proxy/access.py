"""Who may reach which project on the content origin: a short-lived cache of roles, dropped
when a project's members change (NOTIFY). Open tunnels are closed by the hub's live
connections (services/live_connections), not here."""

from __future__ import annotations

import asyncio
import time
import uuid

from cocalc_k8s.services.projects import ProjectService, Role

TTL = 5.0  # seconds: the longest a removed collaborator keeps access without a NOTIFY

Key = tuple[uuid.UUID, uuid.UUID]  # (account_id, project_id)


class AccessCache:
    def __init__(self, projects: ProjectService, *, ttl: float = TTL) -> None:
        self.projects = projects
        self.ttl = ttl
        self._roles: dict[Key, tuple[float, Role | None]] = {}
        self._inflight: dict[Key, asyncio.Future[Role | None]] = {}
        self._generation = 0  # bumped by every change of members: late loads are not kept

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
        """NOTIFY callback: a project's members changed."""
        self._generation += 1
        try:
            project_id = uuid.UUID(payload)
        except ValueError:
            self._roles.clear()
            return
        for key in [k for k in self._roles if k[1] == project_id]:
            del self._roles[key]

    def account_changed(self, payload: str) -> None:
        """NOTIFY callback: an account's credentials changed (banned, made admin, password):
        its cached roles go."""
        self._generation += 1
        try:
            account_id = uuid.UUID(payload)
        except ValueError:
            self._roles.clear()
            return
        for key in [k for k in self._roles if k[0] == account_id]:
            del self._roles[key]

    def forget(self) -> None:
        """The listener reconnected: cached roles may have missed a change."""
        self._generation += 1
        self._roles.clear()
