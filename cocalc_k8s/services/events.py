"""The audit log."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cocalc_k8s.db.models import Event


async def record(
    conn: AsyncConnection,
    kind: str,
    *,
    account_id: uuid.UUID | None,
    project_id: uuid.UUID | None = None,
    **data: Any,
) -> None:
    """Add an event; with `project_id` it also appears in that project's log."""
    await conn.execute(
        insert(Event).values(kind=kind, account_id=account_id, project_id=project_id, data=data)
    )
