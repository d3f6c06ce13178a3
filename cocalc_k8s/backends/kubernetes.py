"""The Kubernetes backend: one pod per project.

It talks to Kubernetes only through a `PodCluster` (`cocalc_k8s.k8s.cluster.ProjectCluster`
in the hub, wired by `app.py`: the backends and k8s layers do not import each other).

    start  home directory on the hub's storage (owned by the project uid when the hub can
           chown) -> pod + token Secret (adopted if they exist) -> wait, through the pod
           cache, for Ready, turning pod Events into progress -> GET /health with the token
    stop   delete the pod (already gone is fine) and wait until the cache has no pod
    exit   a pod that was running fails, ends or disappears: on_exit callbacks, with why

After a hub restart, `running()` adopts every running project pod and reads its token
back from its Secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cocalc_k8s.backends.agent_client import HealthProbe
from cocalc_k8s.backends.base import (
    AgentAddress,
    BackendError,
    Progress,
    ProjectBackend,
    ProjectSpec,
)
from cocalc_k8s.backends.pod_wait import (
    EventCallback,
    PodCallback,
    PodView,
    PodWaiters,
)
from cocalc_k8s.core.quotas import Quota

log = logging.getLogger(__name__)

STOP_TIMEOUT = 120.0


class PodCluster(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def loaded(self) -> None: ...
    def status(self, project_id: uuid.UUID) -> PodView | None: ...
    def project_ids(self) -> set[uuid.UUID]: ...
    @property
    def project_tag(self) -> str: ...
    def on_pod(self, callback: PodCallback) -> None: ...
    def on_event(self, callback: EventCallback) -> None: ...
    async def create(
        self,
        project_id: uuid.UUID,
        quota: Quota,
        token: str,
        *,
        cpu_oc: float,
        mem_oc: float,
        stored: Mapping[str, Any] | None = None,
    ) -> tuple[str, Mapping[str, object]]: ...
    async def delete(self, project_id: uuid.UUID) -> None: ...
    async def read_token(self, project_id: uuid.UUID) -> str | None: ...


class KubernetesBackend(ProjectBackend):
    outlives_hub = True  # pods keep running through a hub restart and are adopted

    def resolved(self, project_id: uuid.UUID) -> Mapping[str, Any]:
        return self._names.get(project_id, {})

    def __init__(
        self, cluster: PodCluster, *, uid: int = 2001, start_timeout: float = 300.0
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.uid = uid
        self.start_timeout = start_timeout
        self._tokens: dict[uuid.UUID, str] = {}
        self._names: dict[uuid.UUID, dict[str, Any]] = {}
        self._up: set[uuid.UUID] = set()  # started (or adopted) and not being stopped
        self._waiters = PodWaiters()
        self._health = HealthProbe()
        self._opened = False
        cluster.on_pod(self._pod_changed)
        cluster.on_event(self._waiters.event)

    async def open(self) -> None:
        if not self._opened:
            self._opened = True
            await self.cluster.open()

    @property
    def image_tag(self) -> str | None:
        return self.cluster.project_tag

    def running_image_tags(self) -> dict[uuid.UUID, str]:
        tags: dict[uuid.UUID, str] = {}
        for project_id in self._up:
            status = self.cluster.status(project_id)
            if status is not None and status.image_tag:
                tags[project_id] = status.image_tag
        return tags

    def address(self, project_id: uuid.UUID) -> AgentAddress | None:
        status = self.cluster.status(project_id)
        token = self._tokens.get(project_id)
        if project_id not in self._up or not token or status is None:
            return None
        if status.state != "running" or not status.ip:
            return None
        return AgentAddress(status.ip, status.port, token)

    async def running(self) -> set[uuid.UUID]:
        await self.open()
        await self.cluster.loaded()
        for project_id in self.cluster.project_ids():
            status = self.cluster.status(project_id)
            if status is None or status.state != "running" or project_id in self._up:
                continue
            token = await self.cluster.read_token(project_id)
            if token:
                self._tokens[project_id] = token
                self._up.add(project_id)
        return set(self._up)

    async def start(self, spec: ProjectSpec, progress: Progress) -> AgentAddress:
        await self.open()
        await self.cluster.loaded()
        existing = self.address(spec.project_id)
        if existing is not None:
            return existing
        try:
            async with asyncio.timeout(self.start_timeout):
                return await self._start(spec, progress)
        except TimeoutError:
            status = self.cluster.status(spec.project_id)
            why = status.reason if status and status.reason else "no answer"
            await self._cleanup(spec.project_id)
            raise BackendError(
                f"the project did not start within {self.start_timeout:.0f} s ({why})"
            ) from None
        except BackendError:
            await self._cleanup(spec.project_id)
            raise
        except Exception as exc:
            log.exception("starting project %s failed", spec.project_id)
            await self._cleanup(spec.project_id)
            raise BackendError(f"the project could not be started: {exc}") from None

    async def _start(self, spec: ProjectSpec, progress: Progress) -> AgentAddress:
        pid = spec.project_id
        current = self.cluster.status(pid)
        if current is not None and current.state in ("stopping", "stopped", "failed"):
            progress("Removing the project's previous pod", 5)
            await self.cluster.delete(pid)
            await self._waiters.wait(pid, lambda: self.cluster.status(pid) is None)
        progress("Preparing the home directory", 10)
        await asyncio.to_thread(_prepare_home, spec.home, self.uid)
        progress("Creating the project's pod", 20)
        with self._waiters.progress(pid, progress):
            self._tokens[pid], names = await self.cluster.create(
                pid,
                spec.quota,
                secrets.token_urlsafe(32),
                cpu_oc=spec.cpu_oc,
                mem_oc=spec.mem_oc,
                stored=spec.resolved,
            )
            self._names[pid] = dict(names)
            seen: list[bool] = []  # the cache may learn of the new pod after create returns
            await self._waiters.wait(pid, lambda: self._ready_or_raise(pid, seen))
        status = self.cluster.status(pid)
        assert status is not None and status.ip
        address = AgentAddress(status.ip, status.port, self._tokens[pid])
        progress("Waiting for the project to answer", 90)
        await self._health.wait(address)
        self._up.add(pid)
        progress("Running", 100)
        return address

    def _ready_or_raise(self, project_id: uuid.UUID, seen: list[bool]) -> bool:
        status = self.cluster.status(project_id)
        if status is None:
            if seen:
                raise BackendError("the project's pod was deleted while it started")
            return False
        seen.append(True)
        if status.state == "failed" or status.state == "stopped":
            raise BackendError(status.reason or "the project's pod failed")
        return status.state == "running" and bool(status.ip)

    async def stop(self, project_id: uuid.UUID) -> None:
        self._up.discard(project_id)
        self._tokens.pop(project_id, None)
        await self.open()
        await self.cluster.loaded()
        try:
            await self.cluster.delete(project_id)
            async with asyncio.timeout(STOP_TIMEOUT):
                await self._waiters.wait(
                    project_id, lambda: self.cluster.status(project_id) is None
                )
        except TimeoutError:
            raise BackendError("the project's pod did not go away") from None
        except Exception as exc:
            raise BackendError(f"the project could not be stopped: {exc}") from None

    async def _cleanup(self, project_id: uuid.UUID) -> None:
        self._up.discard(project_id)
        self._tokens.pop(project_id, None)
        with contextlib.suppress(Exception):
            await self.cluster.delete(project_id)

    def _pod_changed(self, project_id: uuid.UUID, status: PodView | None) -> None:
        self._waiters.changed(project_id)
        if project_id not in self._up:
            return
        if status is None or status.state in ("failed", "stopped", "stopping"):
            self._up.discard(project_id)
            self._tokens.pop(project_id, None)
            reason = "the project's pod was deleted" if status is None else status.reason
            log.warning("project %s: %s", project_id, reason)
            self._exited(project_id, reason or "the project's pod stopped")

    async def close(self) -> None:
        """The hub stops; project pods keep running (the next hub adopts them)."""
        if self._opened:
            await self.cluster.close()
        await self._health.close()


def _prepare_home(home: Path, uid: int) -> None:
    """The home on the hub's storage, owned by the project's uid when the hub may chown."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() == 0 and home.stat().st_uid != uid:
        os.chown(home, uid, uid)
