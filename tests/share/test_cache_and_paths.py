"""The render cache's bounds and the checks on a path inside an item (pure)."""

from __future__ import annotations

import pytest

from cocalc_k8s.core.errors import NotFound
from cocalc_k8s.share.cache import RenderCache
from cocalc_k8s.share.published import clean_inner


def test_cache_is_lru_and_bounded() -> None:
    cache = RenderCache(max_chars=400)
    for n in range(4):
        cache.put(("id", f"p{n}", 1, 1, "1"), "x" * 100)
    assert cache.get(("id", "p0", 1, 1, "1")) is not None  # now the most recent
    cache.put(("id", "p4", 1, 1, "1"), "x" * 100)
    assert cache.get(("id", "p1", 1, 1, "1")) is None  # the least recent went
    assert cache.get(("id", "p0", 1, 1, "1")) is not None
    cache.put(("id", "big", 1, 1, "1"), "x" * 200)  # over a quarter of the cache: not kept
    assert cache.get(("id", "big", 1, 1, "1")) is None
    assert len(cache) == 4
    # A changed file (other size or mtime) is another key.
    assert cache.get(("id", "p0", 2, 1, "1")) is None


def test_inner_paths() -> None:
    assert clean_inner("") == ""
    assert clean_inner("a/./b//c") == "a/b/c"
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\\..\\b", ".git/config", "a/.env", "a\x00"):
        with pytest.raises(NotFound):
            clean_inner(bad)
