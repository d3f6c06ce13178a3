"""A sliding-window counter of failures per key (an account, a client address).

In memory and per process: a second hub process has its own counts, which at worst
doubles the allowance. Old entries are dropped as the window slides.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class FailureWindow:
    """At most `limit` failures per key within `window` seconds."""

    def __init__(
        self, *, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again; 0 when it may now."""
        times = self._prune(key)
        if len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[0] + self.window - self._clock()))

    def fail(self, key: str) -> None:
        self._prune(key).append(self._clock())

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)

    def _prune(self, key: str) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        horizon = self._clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if len(self._failures) > 100_000:  # bound memory under a spray of addresses
            self._failures = {k: v for k, v in self._failures.items() if v}
        return times
