"""The refreshing cache shared by the content gate's role and credential checks."""

from __future__ import annotations

import asyncio

from cocalc_k8s.core.refreshing_cache import RefreshingCache


class Source:
    def __init__(self) -> None:
        self.value = "a"
        self.loads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.asked = asyncio.Event()

    async def load(self, key: str) -> str:
        self.loads += 1
        value = self.value  # what the source says when asked
        self.asked.set()
        await self.gate.wait()
        return value


async def test_disabled_keeps_nothing_then_enabled_keeps() -> None:
    source = Source()
    cache = RefreshingCache(source.load, ttl=60, max_entries=10, enabled=False)
    assert [await cache.get("k") for _ in range(3)] == ["a"] * 3
    assert source.loads == 3
    cache.enabled = True
    await cache.get("k")
    await cache.get("k")
    assert source.loads == 4


async def test_an_answer_loaded_across_a_drop_is_not_kept() -> None:
    source = Source()
    cache = RefreshingCache(source.load, ttl=60, max_entries=10)
    source.gate.clear()
    pending = asyncio.ensure_future(cache.get("k"))
    await source.asked.wait()  # the load has started, with the old value
    source.value = "b"
    cache.drop(lambda key: key == "k")
    source.gate.set()
    assert await pending == "a"  # its caller raced the change
    assert await cache.get("k") == "b"  # but the stale answer was not kept
    assert source.loads == 2


async def test_the_bound_on_entries() -> None:
    source = Source()
    cache = RefreshingCache(source.load, ttl=60, max_entries=2)
    for key in "abc":
        await cache.get(key)
    await cache.get("c")
    assert source.loads == 3  # c was kept after the clear the bound made
    await cache.get("a")
    assert source.loads == 4
