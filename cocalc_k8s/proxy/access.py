"""Who may reach which project on the content origin: a short-lived cache of roles, dropped
when a project's members change (NOTIFY). Open tunnels are closed by the hub's live
connections (services/live_connections), not here."""

from __future__ import annotations

import uuid

from cocalc_k8s.core.refreshing_cache import RefreshingCache
from cocalc_k8s.services.projects import ProjectService, Role

TTL = 5.0  # seconds: the longest a removed collaborator keeps access without a NOTIFY

Key = tuple[uuid.UUID, uuid.UUID]  # (account_id, project_id)


class AccessCache:
    def __init__(self, projects: ProjectService, *, ttl: float = TTL) -> None:
        self.projects = projects
        self._roles: RefreshingCache[Key, Role | None] = RefreshingCache(
            self._load, ttl=ttl, max_entries=100_000
        )

    @property
    def ttl(self) -> float:
        return self._roles.ttl

    async def role(self, account_id: uuid.UUID, project_id: uuid.UUID) -> Role | None:
        """The cached role (see `RefreshingCache`: one query per key at a time, expired
        entries answered while refreshed, changes of members dropped at once by NOTIFY)."""
        return await self._roles.get((account_id, project_id))

    async def _load(self, key: Key) -> Role | None:
        return await self.projects.role_of(*key)

    def members_changed(self, payload: str) -> None:
        """NOTIFY callback: a project's members changed."""
        _drop_matching(self._roles, payload, 1)

    def account_changed(self, payload: str) -> None:
        """NOTIFY callback: an account's credentials changed (banned, made admin, password):
        its cached roles go."""
        _drop_matching(self._roles, payload, 0)

    def forget(self) -> None:
        """The listener reconnected: cached roles may have missed a change."""
        self._roles.clear()


def _drop_matching(cache: RefreshingCache[Key, Role | None], payload: str, part: int) -> None:
    """Drop the entries whose key's `part` is the id in `payload` (all, if it is none)."""
    try:
        wanted = uuid.UUID(payload)
    except ValueError:
        cache.clear()
        return
    cache.drop(lambda key: key[part] == wanted)
