"""A project's log: its events (who started, stopped, edited what, when), newest first.

Events are written where things happen (`services/projects.py`, `services/lifecycle.py`,
`services/culler.py`, the file operations) with `events.record(..., project_id=...)`;
this module only reads them, a page at a time, by descending id.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.db.models import Account, Event

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def page_arguments(before: str | None, limit: str | None) -> tuple[int | None, int]:
    """`?before=<id>&limit=<n>` checked: an event id (>= 1) or nothing, and 1 to 200."""
    try:
        cursor = None if before in (None, "") else int(before)
    except ValueError:
        raise BadRequest("before must be an event id") from None
    if cursor is not None and cursor < 1:
        raise BadRequest("before must be an event id")
    try:
        size = DEFAULT_LIMIT if limit in (None, "") else int(limit)
    except ValueError:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= size <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return cursor, size


async def page(
    engine: AsyncEngine, project_id: uuid.UUID, *, before: int | None, limit: int
) -> dict[str, Any]:
    """Up to `limit` events older than `before` (all: newest first), and whether there are
    more. Each: id, time, kind, account ({id, name}, or None: the hub itself), data."""
    query = (
        select(Event.id, Event.time, Event.kind, Event.data, Event.account_id, Account.name)
        .outerjoin(Account, Account.account_id == Event.account_id)
        .where(Event.project_id == project_id)
        .order_by(Event.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(Event.id < before)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    entries = [
        {
            "id": row.id,
            "time": row.time,
            "kind": row.kind,
            "account": None if row.account_id is None else {"id": row.account_id, "name": row.name},
            "data": row.data,
        }
        for row in rows[:limit]
    ]
    return {"events": entries, "more": len(rows) > limit}
