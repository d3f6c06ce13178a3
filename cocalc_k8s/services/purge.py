"""Purging deleted projects: deleting a project only hides it; an admin purges its files
and rows for good with `cocalc-k8s purge-projects`, after a grace period."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.project_state import ProjectState
from cocalc_k8s.db.models import Project
from cocalc_k8s.services import events


async def purge_deleted_projects(
    engine: AsyncEngine, projects_root: Path, *, older_than: timedelta, dry_run: bool = False
) -> list[uuid.UUID]:
    """Remove the home directories and rows of projects deleted before `older_than` ago
    (stopped ones only: a running project is stopped by the culler first)."""
    cutoff = datetime.now(UTC) - older_than
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Project.project_id).where(
                Project.deleted.is_not(None),
                Project.deleted < cutoff,
                Project.state.in_([ProjectState.STOPPED.value, ProjectState.FAILED.value]),
            )
        )
        doomed = [row.project_id for row in rows]
    if dry_run:
        return doomed
    for project_id in doomed:
        home = projects_root / str(project_id)
        await asyncio.to_thread(shutil.rmtree, home, ignore_errors=True)
        async with engine.begin() as conn:
            await conn.execute(delete(Project).where(Project.project_id == project_id))
            await events.record(conn, "project.purged", account_id=None, project=str(project_id))
    return doomed
