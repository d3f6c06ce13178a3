"""Rendered HTML kept in memory, keyed by what determines it: (item id, path inside,
size, mtime, renderer version). A changed file has a new key; old entries age out of the
LRU. Bounded by total characters held."""

from __future__ import annotations

from collections import OrderedDict

CacheKey = tuple[str, str, int, int, str]


class RenderCache:
    def __init__(self, *, max_chars: int = 128 * 1024 * 1024) -> None:
        self.max_chars = max_chars
        self._entries: OrderedDict[CacheKey, str] = OrderedDict()
        self._chars = 0

    def get(self, key: CacheKey) -> str | None:
        html = self._entries.get(key)
        if html is not None:
            self._entries.move_to_end(key)
        return html

    def put(self, key: CacheKey, html: str) -> None:
        if len(html) > self.max_chars // 4:
            return  # one page must not push out everything else
        old = self._entries.pop(key, None)
        if old is not None:
            self._chars -= len(old)
        self._entries[key] = html
        self._chars += len(html)
        while self._chars > self.max_chars:
            _, dropped = self._entries.popitem(last=False)
            self._chars -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)
