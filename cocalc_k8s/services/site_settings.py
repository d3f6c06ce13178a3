"""Site settings an admin changes at run time (stored in `site_settings`).

The site name and the sign-up mode are read on every page, so each hub keeps them in
memory (`current`). A change sends a NOTIFY on `SITE_CHANNEL`; every hub reloads when it
arrives, and when its listener (re)connects, having possibly missed one. A hub also
reloads after its own changes, so its next page already shows them. Security decisions
(may this person sign up?) read the database, not this copy.

Where projects cannot be sandboxed and the admin did not say the users trust each other
(`core.isolation`), sign-up is closed once the first account exists, whatever the stored
mode: `sign_up_locked` then says why, and choosing another mode is refused.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cocalc_k8s.core import validation
from cocalc_k8s.core.errors import BadRequest, Conflict
from cocalc_k8s.core.isolation import Isolation, sign_up_lock
from cocalc_k8s.core.quotas import DefaultQuotas, validate_quota
from cocalc_k8s.db.models import Account, SiteSetting
from cocalc_k8s.db.notify import notify
from cocalc_k8s.services import events

log = logging.getLogger(__name__)

DEFAULT_QUOTAS = "default_quotas"
SITE_NAME = "site_name"
SIGN_UP = "sign_up"
SITE_CHANNEL = "cocalc_site_settings"  # payload: the name of the changed setting
SignUpMode = Literal["open", "closed", "token"]
SIGN_UP_MODES: tuple[SignUpMode, ...] = ("open", "closed", "token")
DEFAULT_SITE_NAME = "CoCalc"
MAX_SITE_NAME = 60


@dataclass(frozen=True, slots=True)
class SiteConfig:
    site_name: str = DEFAULT_SITE_NAME
    sign_up: SignUpMode = "open"
    sign_up_locked: str | None = None  # why sign-up is closed whatever the admin chose


def site_name(value: Any) -> str:
    """1 to 60 printable characters, spaces collapsed."""
    clean = validation.name(value, field="site name")
    if len(clean) > MAX_SITE_NAME:
        raise BadRequest(f"site name must have at most {MAX_SITE_NAME} characters")
    return clean


def sign_up_mode(value: Any) -> SignUpMode:
    if value not in SIGN_UP_MODES:
        raise BadRequest("sign_up must be one of: open, closed, token")
    return cast(SignUpMode, value)


class SiteSettings:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        allow_sign_up: bool = True,
        isolation: Isolation | None = None,
    ) -> None:
        self.engine = engine
        self.isolation = isolation or Isolation(sandboxed=True, trusted_users=False)
        # The start-up setting (COCALC_ALLOW_SIGN_UP) holds until an admin chooses a mode.
        self.defaults = SiteConfig(sign_up="open" if allow_sign_up else "closed")
        self.current = self.defaults
        self._reloads: set[asyncio.Task[SiteConfig]] = set()

    async def reload(self) -> SiteConfig:
        """Read the settings again. While the database is unreachable the last known ones
        stay (the defaults at start-up); the listener reloads when it connects."""
        try:
            async with self.engine.connect() as conn:
                self.current = await self._config(conn)
        except (DBAPIError, OSError) as exc:
            log.warning("site settings not read, keeping the last known ones: %s", exc)
        return self.current

    def changed(self, payload: str = "") -> None:
        """NOTIFY callback (also run when the listener connects): reload in the background."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def close(self) -> None:
        """Let reloads still running finish (or end them) before the engine goes."""
        for task in list(self._reloads):
            task.cancel()
        await asyncio.gather(*self._reloads, return_exceptions=True)

    async def config(self, conn: AsyncConnection) -> SiteConfig:
        """The settings as stored now (inside the caller's transaction)."""
        return await self._config(conn)

    async def change(self, admin_id: uuid.UUID, values: Any) -> SiteConfig:
        """Set `site_name` and/or `sign_up`; returns the new configuration."""
        if not isinstance(values, dict) or not values:
            raise BadRequest("give site_name and/or sign_up")
        unknown = set(values) - {SITE_NAME, SIGN_UP}
        if unknown:
            raise BadRequest(f"unknown site setting {sorted(unknown)[0]!r}")
        clean: dict[str, Any] = {}
        if SITE_NAME in values:
            clean[SITE_NAME] = site_name(values[SITE_NAME])
        if SIGN_UP in values:
            clean[SIGN_UP] = sign_up_mode(values[SIGN_UP])
        async with self.engine.begin() as conn:
            if clean.get(SIGN_UP, "closed") != "closed":
                locked = (await self._config(conn)).sign_up_locked
                if locked:
                    raise Conflict(locked)
            for name, value in clean.items():
                await _store(conn, name, value)
                await notify(conn, SITE_CHANNEL, name)
            await events.record(conn, "site.settings", account_id=admin_id, changed=clean)
        return await self.reload()

    async def _config(self, conn: AsyncConnection) -> SiteConfig:
        rows = await conn.execute(
            select(SiteSetting.name, SiteSetting.value).where(
                SiteSetting.name.in_([SITE_NAME, SIGN_UP])
            )
        )
        config = self.defaults
        for name, value in rows:
            if name == SITE_NAME and isinstance(value, str) and value:
                config = replace(config, site_name=value)
            elif name == SIGN_UP and value in SIGN_UP_MODES:
                config = replace(config, sign_up=value)
        if self.isolation.single_account:
            any_account = (await conn.execute(select(exists().select_from(Account)))).scalar()
            locked = sign_up_lock(self.isolation, accounts=int(bool(any_account)))
            if locked:
                config = replace(config, sign_up="closed", sign_up_locked=locked)
        return config

    async def default_quotas(self) -> dict[str, Any]:
        """The effective defaults: built-in values overlaid with the admin's."""
        async with self.engine.connect() as conn:
            stored = await _stored(conn, DEFAULT_QUOTAS)
        return {**asdict(DefaultQuotas()), **(stored if isinstance(stored, dict) else {})}

    async def change_default_quotas(self, admin_id: uuid.UUID, values: Any) -> dict[str, Any]:
        """Merge `values` (validated) into the stored defaults; returns the effective ones."""
        clean = validate_quota(values, site=True)
        async with self.engine.begin() as conn:
            stored = await _stored(conn, DEFAULT_QUOTAS)
            merged = {**(stored if isinstance(stored, dict) else {}), **clean}
            await _store(conn, DEFAULT_QUOTAS, merged)
            await events.record(conn, "site.default_quotas", account_id=admin_id, changed=clean)
        return await self.default_quotas()


async def _stored(conn: AsyncConnection, name: str) -> Any:
    return (
        await conn.execute(select(SiteSetting.value).where(SiteSetting.name == name))
    ).scalar_one_or_none()


async def _store(conn: AsyncConnection, name: str, value: Any) -> None:
    await conn.execute(
        insert(SiteSetting)
        .values(name=name, value=value)
        .on_conflict_do_update(
            index_elements=["name"], set_={"value": value, "changed": datetime.now(UTC)}
        )
    )
