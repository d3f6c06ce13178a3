"""A reflector: one list+watch of one kind of object, kept as a local cache (kubespawner's
design). Questions about pods are answered from the cache, never by a call per project.

    list (cache := items, resourceVersion := the list's)
      -> watch from resourceVersion, applying ADDED/MODIFIED/DELETED (BOOKMARK: rv only)
      -> the stream ends or goes quiet: watch again from the last resourceVersion
      -> 410 Gone (the version was compacted away) or another error: list again
         (after a backoff when the API failed), reporting what changed meanwhile

`trim` keeps only what the cache's users read (10,000 whole pods are ~100 MiB).
`first_load` resolves after the first successful list: before it, the cache knows nothing.
`on_change(key, object)` is called on the event loop for every change (object None: gone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.k8s.gateway import KubernetesError, KubernetesGateway
from cocalc_k8s.k8s.stream import WatchEnded, watch

log = logging.getLogger(__name__)

Object = dict[str, Any]
OnChange = Callable[[str, Object | None], None]


def object_name(obj: Object) -> str | None:
    name = obj.get("metadata", {}).get("name")
    return name if isinstance(name, str) else None


class Reflector:
    def __init__(
        self,
        gateway: KubernetesGateway,
        kind: str,
        *,
        on_change: OnChange,
        label_selector: str = "",
        field_selector: str = "",
        key: Callable[[Object], str | None] = object_name,
        cache: bool = True,
        trim: Callable[[Object], Object] | None = None,
        quiet: float = 60.0,
        max_backoff: float = 10.0,
    ) -> None:
        self.gateway = gateway
        self.kind = kind
        self.on_change = on_change
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.key = key
        self.cache = cache
        self.trim = trim or (lambda obj: obj)
        self.quiet = quiet
        self.max_backoff = max_backoff
        self.objects: dict[str, Object] = {}
        self.resource_version = ""
        self.lists = 0  # how many times it listed (1 + re-lists): for tests and metrics
        self.first_load: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"reflector-{self.kind}")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._list()
                if not self.first_load.done():
                    self.first_load.set_result(None)
                failures = 0
                await self._watch()
            except KubernetesError as exc:
                if exc.status == 410:
                    log.info("%s watch: resourceVersion too old; listing again", self.kind)
                    continue
                failures += 1
                delay = min(self.max_backoff, 0.1 * 2**failures)
                log.warning("%s reflector: %s; listing again in %.1f s", self.kind, exc, delay)
                await asyncio.sleep(delay)
            except Exception:
                failures += 1
                log.exception("%s reflector failed; listing again", self.kind)
                await asyncio.sleep(min(self.max_backoff, 0.1 * 2**failures))

    async def _list(self) -> None:
        answer = await self.gateway.list(
            self.kind, label_selector=self.label_selector, field_selector=self.field_selector
        )
        self.lists += 1
        self.resource_version = str(answer.get("metadata", {}).get("resourceVersion") or "")
        if not self.cache:
            return
        fresh: dict[str, Object] = {}
        for item in map(self.trim, answer.get("items") or ()):
            key = self.key(item)
            if key is not None:
                fresh[key] = item
        old, self.objects = self.objects, fresh
        for key in old.keys() - fresh.keys():
            self.on_change(key, None)
        for key, item in fresh.items():
            if _version(old.get(key)) != _version(item):
                self.on_change(key, item)

    async def _watch(self) -> None:
        """Watch until an error; a stream that merely ended is started again."""
        while True:
            try:
                async for event in watch(
                    self.gateway,
                    self.kind,
                    resource_version=self.resource_version,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                    quiet=self.quiet,
                ):
                    self._apply(event)
            except WatchEnded as exc:
                log.debug("%s watch ended (%s); watching again", self.kind, exc)

    def _apply(self, event: Object) -> None:
        obj = self.trim(event.get("object") or {})
        version = _version(obj)
        if version:
            self.resource_version = version
        kind = event.get("type")
        key = self.key(obj)
        if key is None or kind not in ("ADDED", "MODIFIED", "DELETED"):
            return  # BOOKMARK, or an object this reflector does not track
        if kind == "DELETED":
            if self.cache:
                self.objects.pop(key, None)
            self.on_change(key, None)
            return
        if self.cache:
            self.objects[key] = obj
        self.on_change(key, obj)


def _version(obj: Object | None) -> str:
    return str((obj or {}).get("metadata", {}).get("resourceVersion") or "")
