"""The content origin's role cache: one query per miss, stale answers while refreshing,
and no stale role kept after the project's members change."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from cocalc_k8s.proxy.access import AccessCache


class Roles:
    """Answers role_of like ProjectService, counting queries; `gate` holds them."""

    def __init__(self) -> None:
        self.role: str | None = "collaborator"
        self.queries = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.asked = asyncio.Event()

    async def role_of(self, account_id: uuid.UUID, project_id: uuid.UUID) -> str | None:
        self.queries += 1
        self.asked.set()
        answer = self.role
        await self.gate.wait()
        return answer


async def test_concurrent_misses_share_one_query() -> None:
    roles = Roles()
    cache = AccessCache(roles, ttl=60)  # type: ignore[arg-type]
    roles.gate.clear()
    key = (uuid.uuid4(), uuid.uuid4())
    waiters = [asyncio.ensure_future(cache.role(*key)) for _ in range(50)]
    await roles.asked.wait()  # the one query is under way; the others wait on it
    roles.gate.set()
    assert set(await asyncio.gather(*waiters)) == {"collaborator"}
    assert roles.queries == 1


async def test_expired_entries_are_served_while_one_refresh_runs() -> None:
    roles = Roles()
    cache = AccessCache(roles, ttl=0)  # type: ignore[arg-type]
    key = (uuid.uuid4(), uuid.uuid4())
    assert await cache.role(*key) == "collaborator"
    roles.role = None
    roles.gate.clear()
    answers = [await cache.role(*key) for _ in range(20)]
    assert answers == ["collaborator"] * 20
    refresh = cache._roles.refreshes()
    assert len(refresh) == 1  # one refresh for all of them
    roles.gate.set()
    await asyncio.gather(*refresh)
    assert roles.queries == 2
    assert await cache.role(*key) is None


async def test_a_change_of_members_wins_over_a_late_answer() -> None:
    roles = Roles()
    cache = AccessCache(roles, ttl=60)  # type: ignore[arg-type]
    key = (uuid.uuid4(), uuid.uuid4())
    roles.gate.clear()
    pending: Any = asyncio.ensure_future(cache.role(*key))
    await roles.asked.wait()  # the query starts, with the old membership
    roles.role = None
    cache.members_changed(str(key[1]))  # the NOTIFY arrives before the answer
    roles.gate.set()
    assert await pending == "collaborator"  # that request raced the change
    assert await cache.role(*key) is None  # but the stale answer was not kept
