"""Waiting on project pods without polling: the pod cache calls `changed(project_id)`, and
whoever waits for a condition on that project re-checks it then. Pod Events (Scheduled,
Pulling, Started, ...) become progress messages of the start that waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Protocol

from cocalc_k8s.backends.base import Progress


class PodView(Protocol):
    """What the backend reads of a project pod (`cocalc_k8s.k8s.pod_status.PodStatus`)."""

    @property
    def project_id(self) -> uuid.UUID: ...
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def ip(self) -> str | None: ...
    @property
    def port(self) -> int: ...
    @property
    def image_tag(self) -> str | None: ...


PodCallback = Callable[[uuid.UUID, PodView | None], None]
EventCallback = Callable[[uuid.UUID, str, str], None]

EVENT_PROGRESS: dict[str, tuple[str, int]] = {
    "Scheduled": ("Scheduled on a node", 30),
    "Pulling": ("Pulling the project image", 40),
    "Pulled": ("Project image ready", 60),
    "Created": ("Container created", 70),
    "Started": ("Container started", 80),
}
"""Pod Event reasons shown to users while a project starts, and their percentage."""
_WARNINGS = ("FailedScheduling", "Failed", "BackOff", "FailedMount", "FailedCreatePodSandBox")


class PodWaiters:
    def __init__(self) -> None:
        self._events: defaultdict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)
        self._progress: dict[uuid.UUID, Progress] = {}
        self._percent: dict[uuid.UUID, int] = {}

    def changed(self, project_id: uuid.UUID) -> None:
        for event in self._events.get(project_id, ()):
            event.set()

    async def wait(self, project_id: uuid.UUID, condition: Callable[[], bool]) -> None:
        """Until `condition()` is true (it may raise to give up), checked on each change."""
        event = asyncio.Event()
        self._events[project_id].add(event)
        try:
            while not condition():
                await event.wait()
                event.clear()
        finally:
            self._events[project_id].discard(event)
            if not self._events[project_id]:
                del self._events[project_id]

    @contextlib.contextmanager
    def progress(self, project_id: uuid.UUID, progress: Progress) -> Iterator[None]:
        """Route the project's pod Events to `progress` for the duration."""
        self._progress[project_id] = progress
        self._percent[project_id] = 20
        try:
            yield
        finally:
            self._progress.pop(project_id, None)
            self._percent.pop(project_id, None)

    def event(self, project_id: uuid.UUID, reason: str, message: str) -> None:
        progress = self._progress.get(project_id)
        if progress is None:
            return
        if reason in EVENT_PROGRESS:
            text, percent = EVENT_PROGRESS[reason]
            self._percent[project_id] = max(self._percent[project_id], percent)
            progress(text, self._percent[project_id])
        elif reason in _WARNINGS and message:
            progress(f"{reason}: {message}", self._percent[project_id])
