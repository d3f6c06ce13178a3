"""Site settings an admin changes at run time (stored in `site_settings`)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.quotas import DefaultQuotas, validate_quota
from cocalc_k8s.db.models import SiteSetting
from cocalc_k8s.services import events

DEFAULT_QUOTAS = "default_quotas"


class SiteSettings:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def default_quotas(self) -> dict[str, Any]:
        """The effective defaults: built-in values overlaid with the admin's."""
        async with self.engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(SiteSetting.value).where(SiteSetting.name == DEFAULT_QUOTAS)
                )
            ).scalar_one_or_none()
        return {**asdict(DefaultQuotas()), **(stored if isinstance(stored, dict) else {})}

    async def change_default_quotas(self, admin_id: uuid.UUID, values: Any) -> dict[str, Any]:
        """Merge `values` (validated) into the stored defaults; returns the effective ones."""
        clean = validate_quota(values, site=True)
        merged = {**await self._stored(), **clean}
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(SiteSetting)
                .values(name=DEFAULT_QUOTAS, value=merged)
                .on_conflict_do_update(
                    index_elements=["name"], set_={"value": merged, "changed": datetime.now(UTC)}
                )
            )
            await events.record(conn, "site.default_quotas", account_id=admin_id, changed=clean)
        return await self.default_quotas()

    async def _stored(self) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(SiteSetting.value).where(SiteSetting.name == DEFAULT_QUOTAS)
                )
            ).scalar_one_or_none()
        return stored if isinstance(stored, dict) else {}
