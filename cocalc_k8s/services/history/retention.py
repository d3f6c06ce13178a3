"""Thinning old versions (the site's retention setting; by default everything is kept).

Versions older than `after_days` keep only the last one of each hour (or day); newer
versions, and the newest version of every file, are always kept. Version numbers do not
change (a thinned history has gaps). The kept versions are re-encoded so that each delta
is again against the version stored before it (`store`'s invariant), with a whole text
at least every `SNAPSHOT_EVERY` rows. One history at a time, its row locked, so recording
waits for it rather than interleaving. Run by the leading hub (`LeaderLoop`), hourly.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.db.models import FileHistory, FileVersion
from cocalc_k8s.services.history.delta import apply_delta, pack_delta, pack_text, unpack_text
from cocalc_k8s.services.history.store import SNAPSHOT_EVERY
from cocalc_k8s.services.leader_loop import LeaderLoop

log = logging.getLogger(__name__)

BUCKETS = ("hour", "day")
SWEEP_EVERY = 3600.0


@dataclass(frozen=True, slots=True)
class Retention:
    after_days: int = 0  # 0: keep every version
    bucket: str = "hour"  # thinned to one per hour | day


def kept(times: list[tuple[int, datetime]], *, cutoff: datetime, bucket: str) -> set[int]:
    """The versions to keep (pure): every version at or after `cutoff`, the last of each
    `bucket` before it, and the newest whatever its age."""
    keep: dict[object, int] = {}
    out: set[int] = set()
    for version, when in sorted(times):
        if when >= cutoff:
            out.add(version)
            continue
        key = when.date() if bucket == "day" else (when.date(), when.hour)
        keep[key] = version  # later versions of the bucket replace earlier ones
    out.update(keep.values())
    if times:
        out.add(max(v for v, _ in times))
    return out


class HistoryRetention:
    def __init__(self, engine: AsyncEngine, policy: Retention) -> None:
        if policy.bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}")
        self.engine = engine
        self.policy = policy
        self._loop = LeaderLoop("history-retention", self.sweep, SWEEP_EVERY)

    def on_leadership(self, leading: bool) -> None:
        if self.policy.after_days > 0:
            self._loop.on_leadership(leading)

    async def close(self) -> None:
        await self._loop.close()

    async def sweep(self) -> int:
        """Thin every history that has more old versions than buckets; versions removed."""
        if self.policy.after_days <= 0:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=self.policy.after_days)
        bucket = func.date_trunc(self.policy.bucket, FileVersion.time)
        async with self.engine.connect() as conn:
            ids = list(
                await conn.scalars(
                    select(FileVersion.history_id)
                    .where(FileVersion.time < cutoff)
                    .group_by(FileVersion.history_id)
                    .having(func.count() > func.count(bucket.distinct()))
                    .limit(1000)
                )
            )
        removed = 0
        for history_id in ids:
            removed += await self.thin(history_id, cutoff=cutoff)
        if removed:
            log.info("history retention: %d old versions thinned", removed)
        return removed

    async def thin(self, history_id: uuid.UUID, *, cutoff: datetime) -> int:
        async with self.engine.begin() as conn:
            await conn.execute(
                select(FileHistory.id).where(FileHistory.id == history_id).with_for_update()
            )
            rows = (
                await conn.execute(
                    select(
                        FileVersion.version, FileVersion.time, FileVersion.base, FileVersion.data
                    )
                    .where(FileVersion.history_id == history_id)
                    .order_by(FileVersion.version)
                )
            ).all()
            keep = kept(
                [(r.version, r.time) for r in rows], cutoff=cutoff, bucket=self.policy.bucket
            )
            if len(keep) == len(rows):
                return 0
            chain = [(r.version, r.base, bytes(r.data)) for r in rows]
            rewritten = await asyncio.to_thread(_reencode, chain, keep)
            await conn.execute(
                delete(FileVersion).where(
                    FileVersion.history_id == history_id, FileVersion.version.not_in(keep)
                )
            )
            for version, base, data in rewritten:
                await conn.execute(
                    update(FileVersion)
                    .where(FileVersion.history_id == history_id, FileVersion.version == version)
                    .values(base=base, data=data)
                )
        return len(rows) - len(keep)


def _reencode(
    chain: list[tuple[int, int | None, bytes]], keep: set[int]
) -> list[tuple[int, int | None, bytes]]:
    """The kept versions' new (version, base, data), replaying the old chain once."""
    out: list[tuple[int, int | None, bytes]] = []
    text = ""
    previous: tuple[int, str] | None = None
    since_snapshot = 0
    for version, base, data in chain:
        text = unpack_text(data) if base is None else apply_delta(text, data)
        if version not in keep:
            continue
        if previous is None or since_snapshot + 1 >= SNAPSHOT_EVERY:
            out.append((version, None, pack_text(text)))
            since_snapshot = 0
        else:
            out.append((version, previous[0], pack_delta(previous[1], text)))
            since_snapshot += 1
        previous = (version, text)
    return out
