"""A periodic sweep that only the leading hub runs (the one that runs the projects): started
when this hub takes the lead, cancelled when it loses it or stops. A failed sweep is
logged and the next one retries: one bad pass never ends the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cocalc_k8s.core.tasks import cancel

log = logging.getLogger(__name__)


class LeaderLoop:
    def __init__(self, name: str, sweep: Callable[[], Awaitable[Any]], interval: float) -> None:
        self.name = name
        self.sweep = sweep
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def on_leadership(self, leading: bool) -> None:
        if leading and self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)
        elif not leading and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("%s: sweep failed; the next one retries", self.name)
