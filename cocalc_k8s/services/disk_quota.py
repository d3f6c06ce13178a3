"""Per-project disk quotas by accounting: the hub measures each home and acts on it.

No filesystem project quota is set (`enforcement` says what the storage would offer and
what applies), so instead:

- **hub-side writes** (the files API, uploads) ask `room` first: a write that does not fit
  in the project's `disk_mb` gets 413 (`PayloadTooLarge`), and every write is refused with
  507 (`InsufficientStorage`) while the project is at or over its quota, or while the
  volume of the hub's data (the database's, with the embedded PostgreSQL) has less than
  the reserve free;
- **processes inside a project** write where the hub cannot refuse them: every `interval`
  seconds the leader measures each running project (`sweep`) and stops one over its quota,
  with the reason in the project log; while the volume is short of its reserve, every
  running project that grew since the last sweep is stopped too, so no project can fill
  the database's disk without being stopped;
- a project over its quota does not start (`start_check`); its files can still be read
  and deleted through the hub.

Usage is measured off the event loop (`ProjectFS.disk_usage`: allocated blocks, hard links
once), cached for `ttl` seconds, raised at once by the hub's own writes (`wrote`) and
forgotten after deletions (`forget`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.backends.base import ProjectSpec
from cocalc_k8s.core.errors import InsufficientStorage, PayloadTooLarge
from cocalc_k8s.core.project_state import ProjectState
from cocalc_k8s.core.projectfs import ProjectFS
from cocalc_k8s.core.quotas import effective_quota
from cocalc_k8s.db.models import Project, SiteSetting
from cocalc_k8s.services.leader_loop import LeaderLoop
from cocalc_k8s.services.lifecycle import LifecycleManager

log = logging.getLogger(__name__)

MIB = 1024 * 1024
CHECK_INTERVAL = 10.0
USAGE_TTL = 30.0


def mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


class DiskQuota:
    def __init__(
        self,
        engine: AsyncEngine,
        fs: Callable[[uuid.UUID], Awaitable[ProjectFS]],
        lifecycle: LifecycleManager,
        *,
        volume: Path,
        reserve_bytes: int,
        interval: float = CHECK_INTERVAL,
        ttl: float = USAGE_TTL,
    ) -> None:
        self.engine = engine
        self._fs = fs
        self.lifecycle = lifecycle
        self.volume = volume
        self.reserve_bytes = reserve_bytes
        self.ttl = ttl
        self._usage: dict[uuid.UUID, tuple[float, int]] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._loop = LeaderLoop("disk-quota", self.sweep, interval)
        self.enforcement = "Disk quotas are enforced by accounting."  # see `enforcement`

    # -- usage ------------------------------------------------------------------------

    async def usage(self, project_id: uuid.UUID, *, fresh: bool = False) -> int:
        """Bytes the project's home holds (measured at most `ttl` seconds ago, unless
        `fresh`). Concurrent askers share one measurement."""
        lock = self._locks.setdefault(project_id, asyncio.Lock())
        asked = time.monotonic()
        async with lock:
            cached = self._usage.get(project_id)
            if cached is not None:
                young = time.monotonic() - cached[0] < self.ttl
                if cached[0] >= asked or (young and not fresh):  # or measured while waiting
                    return cached[1]
            fs = await self._fs(project_id)
            measured = time.monotonic()
            used = await asyncio.to_thread(fs.disk_usage)
            self._usage[project_id] = (measured, used)
            return used

    def wrote(self, project_id: uuid.UUID, size: int) -> None:
        """The hub just added about `size` bytes to the home."""
        cached = self._usage.get(project_id)
        if cached is not None:
            self._usage[project_id] = (cached[0], cached[1] + max(0, size))

    def forget(self, project_id: uuid.UUID) -> None:
        """Files went away (or changed in ways not counted): measure again next time."""
        self._usage.pop(project_id, None)

    async def quota_bytes(self, project_id: uuid.UUID) -> int:
        """The project's effective `disk_mb`, in bytes."""
        async with self.engine.connect() as conn:
            own = (
                await conn.execute(select(Project.quota).where(Project.project_id == project_id))
            ).scalar_one()
            defaults = await _default_quotas(conn)
        return effective_quota(defaults, own).disk_mb * MIB

    # -- hub-side writes --------------------------------------------------------------

    async def room(self, project_id: uuid.UUID, *, adding: int | None = None) -> int:
        """Bytes the hub may still write into the project (`adding`, when known, is
        checked now). InsufficientStorage when the project is at or over its quota or the
        data volume is short of its reserve; PayloadTooLarge when `adding` does not fit."""
        quota = await self.quota_bytes(project_id)
        used = await self.usage(project_id)
        if used >= quota:
            raise InsufficientStorage(over_quota(used, quota))
        free, volume_room = await self.volume_room()
        room = min(quota - used, volume_room)
        if adding is not None and adding > room:
            if room == volume_room:
                raise InsufficientStorage(volume_full(free))
            raise PayloadTooLarge(no_room(adding, used, quota))
        return room

    async def volume_room(self) -> tuple[int, int]:
        """(bytes free on the data volume, bytes the hub may still write there);
        InsufficientStorage when it is short of its reserve."""
        free = await asyncio.to_thread(self.volume_free)
        if free <= self.reserve_bytes:
            raise InsufficientStorage(volume_full(free))
        return free, free - self.reserve_bytes

    def volume_free(self) -> int:
        """Bytes free (for unprivileged writers) on the volume of the hub's data."""
        st = os.statvfs(self.volume)
        return st.f_bavail * st.f_frsize

    # -- processes: the periodic check ------------------------------------------------

    async def start_check(self, spec: ProjectSpec) -> str | None:
        """For `LifecycleManager.start_checks`: a project over its quota does not start."""
        used = await self.usage(spec.project_id, fresh=True)
        quota = spec.quota.disk_mb * MIB
        if used > quota:
            return (
                f"{over_quota(used, quota)}: delete files (the Files tab works while the "
                "project is stopped), then start it again"
            )
        return None

    async def sweep(self) -> list[tuple[uuid.UUID, str]]:
        """Measure every running project; stop those over their quota, and, while the
        data volume is short of its reserve, those that grew since the last sweep.
        Returns (project, reason) for each stop."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Project.project_id, Project.quota).where(
                        Project.state == ProjectState.RUNNING.value
                    )
                )
            ).all()
            defaults = await _default_quotas(conn)
        stops: list[tuple[uuid.UUID, str, dict[str, Any]]] = []
        grown: list[uuid.UUID] = []
        for row in rows:
            before = self._usage.get(row.project_id)
            used = await self.usage(row.project_id, fresh=True)
            quota = effective_quota(defaults, row.quota).disk_mb * MIB
            data = {"disk_used_mb": round(used / MIB), "disk_quota_mb": round(quota / MIB)}
            if used > quota:
                stops.append((row.project_id, over_quota(used, quota), data))
            elif before is None or used > before[1]:
                grown.append(row.project_id)
        free = await asyncio.to_thread(self.volume_free)
        if free < self.reserve_bytes:
            log.error("the data volume has %s free, below its reserve", mib(free))
            stops += [(p, volume_full(free), {"volume_free_mb": round(free / MIB)}) for p in grown]
        for project_id, reason, data in stops:
            log.warning("project %s: stopping, %s", project_id, reason)
            await self.lifecycle.stop_because(project_id, reason, **data)
        return [(project_id, reason) for project_id, reason, _ in stops]

    def on_leadership(self, leading: bool) -> None:
        """Only the leader (who runs the projects) sweeps."""
        self._loop.on_leadership(leading)

    async def close(self) -> None:
        await self._loop.close()


def enforcement(path: Path) -> str:
    """How quotas are enforced on the storage at `path`, for the admin page and the log."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        mountinfo = ""
    fstype, mount, project_quotas = mount_of(mountinfo, str(path.resolve()))
    where = f"{fstype or 'unknown'} filesystem at {mount or '?'}"
    if project_quotas:
        offer = "it has project quotas enabled, which cocalc-k8s does not set yet"
    elif fstype in ("xfs", "ext4"):
        offer = "it has no project quotas enabled (mount option prjquota)"
    else:
        offer = "it has no project quotas the hub could set"
    return (
        f"Disk quotas are enforced by accounting ({where}: {offer}): the hub refuses its "
        f"own writes over a project's quota and stops a running project over it within "
        f"{CHECK_INTERVAL:.0f} s."
    )


def mount_of(mountinfo: str, path: str) -> tuple[str, str, bool]:
    """(filesystem type, mount point, project quotas on) of the mount holding `path`,
    from the text of /proc/self/mountinfo (pure); empty strings when none matches."""
    best: tuple[str, str, bool] = ("", "", False)
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 3:
            continue
        mount = fields[4]
        inside = path == mount or path.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[1]):
            options = set(fields[5].split(",")) | set(tail[2].split(","))
            best = (tail[0], mount, bool(options & {"prjquota", "pquota", "pqnoenforce"}))
    return best


async def _default_quotas(conn: Any) -> dict[str, Any]:
    stored = (
        await conn.execute(select(SiteSetting.value).where(SiteSetting.name == "default_quotas"))
    ).scalar_one_or_none()
    return stored if isinstance(stored, dict) else {}


def over_quota(used: int, quota: int) -> str:
    return f"the project uses {mib(used)}, over its disk quota of {mib(quota)}"


def no_room(size: int, used: int, quota: int) -> str:
    return (
        f"not enough space in the project: the file needs {mib(size)}, "
        f"{mib(max(0, quota - used))} of the {mib(quota)} disk quota are free"
    )


def volume_full(free: int) -> str:
    return (
        f"the server's disk is nearly full ({mib(free)} free, below the reserve the hub "
        "keeps for its database); ask an admin"
    )
