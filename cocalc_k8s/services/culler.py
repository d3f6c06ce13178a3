"""The culler: the lifecycle manager's periodic sweep (run by the leader only).

- a running project idle for longer than its quota's `idle_timeout` is stopped, unless it
  is `always_running`;
- an `always_running` project that is stopped or failed is started again;
- a project stuck in starting or stopping for longer than the timeouts is cleaned up and
  marked failed with the reason;
- a deleted project that still runs is stopped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.project_state import ProjectState
from cocalc_k8s.core.quotas import Quota, effective_quota
from cocalc_k8s.db.models import Project, SiteSetting
from cocalc_k8s.services.leader_loop import LeaderLoop
from cocalc_k8s.services.lifecycle import LifecycleManager

log = logging.getLogger(__name__)
Decision = tuple[str, str, dict[str, Any]]


class Culler:
    def __init__(
        self,
        engine: AsyncEngine,
        manager: LifecycleManager,
        *,
        interval: float = 30.0,
        start_timeout: float = 300.0,
        stop_timeout: float = 120.0,
    ) -> None:
        self.engine = engine
        self.manager = manager
        self.start_timeout = timedelta(seconds=start_timeout)
        self.stop_timeout = timedelta(seconds=stop_timeout)
        self._loop = LeaderLoop("culler", self.sweep, interval)

    def on_leadership(self, leading: bool) -> None:
        """Only the leader (who runs the projects) sweeps."""
        self._loop.on_leadership(leading)

    async def close(self) -> None:
        await self._loop.close()

    async def sweep(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """One pass; returns what it did as (project_id, action) pairs (for tests, logs)."""
        now = now or datetime.now(UTC)
        async with self.engine.connect() as conn:
            defaults = (
                await conn.execute(
                    select(SiteSetting.value).where(SiteSetting.name == "default_quotas")
                )
            ).scalar_one_or_none()
            rows = (
                await conn.execute(
                    select(
                        Project.project_id,
                        Project.state,
                        Project.state_changed,
                        Project.last_active,
                        Project.quota,
                        Project.deleted,
                    ).where(self._candidates(defaults))
                )
            ).all()
        defaults = defaults if isinstance(defaults, dict) else {}
        done: list[tuple[str, str]] = []
        for row in rows:
            action = self._decide(row, effective_quota(defaults, row.quota), now)
            if action is None:
                continue
            kind, reason, data = action
            done.append((str(row.project_id), kind))
            log.info("project %s: %s (%s)", row.project_id, kind, reason)
            if kind == "stop":
                await self.manager.stop_because(row.project_id, reason, **data)
            elif kind == "fail":
                await self.manager.fail_stuck(row.project_id, reason)
            else:
                await self.manager.request(row.project_id, "start", reason=reason)
        return done

    @staticmethod
    def _candidates(defaults: Any) -> ColumnElement[bool]:
        """Projects that are not stopped, or that should always run."""
        not_stopped = Project.state != ProjectState.STOPPED.value
        if isinstance(defaults, dict) and defaults.get("always_running") is True:
            return or_(not_stopped, Project.deleted.is_(None))
        return or_(not_stopped, Project.quota["always_running"].as_boolean().is_(True))

    def _decide(self, row: Row[Any], quota: Quota, now: datetime) -> Decision | None:
        """(action, reason, data for the project log), or None: nothing to do."""
        state = ProjectState(row.state)
        since = now - row.state_changed
        if row.deleted is not None:
            deleted: Decision = ("stop", "the project was deleted", {})
            return deleted if state != ProjectState.STOPPED else None
        if state == ProjectState.STARTING and since > self.start_timeout:
            return "fail", f"stuck starting for {since.total_seconds():.0f} s", {}
        if state == ProjectState.STOPPING and since > self.stop_timeout:
            return "fail", f"stuck stopping for {since.total_seconds():.0f} s", {}
        always = quota.always_running
        if always and state in (ProjectState.STOPPED, ProjectState.FAILED):
            return "start", "always running", {}
        if state == ProjectState.RUNNING and not always:
            last = row.last_active or row.state_changed
            idle = (now - last).total_seconds()
            if idle > quota.idle_timeout:
                minutes = round(idle / 60)
                return "stop", f"idle for {minutes} minutes", {"idle_minutes": minutes}
        return None
