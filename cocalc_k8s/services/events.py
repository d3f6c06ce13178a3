"""The audit log."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cocalc_k8s.db.models import Event


async def record(
    conn: AsyncConnection, kind: str, *, account_id: uuid.UUID | None, **data: Any
) -> None:
    await conn.execute(insert(Event).values(kind=kind, account_id=account_id, data=data))
