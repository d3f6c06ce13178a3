"""Thinning old versions: which are kept (pure), and a thinned history still reads every
kept version exactly, keeps its newest and records on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from cocalc_k8s.keys import HISTORY, HISTORY_RETENTION
from cocalc_k8s.services.history.retention import Retention, kept


def test_kept_versions() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    cutoff = now - timedelta(days=30)
    old = now - timedelta(days=40)
    times = [
        (1, old),
        (2, old + timedelta(minutes=10)),
        (3, old + timedelta(minutes=70)),  # the next hour
        (4, old + timedelta(days=1)),
        (5, now - timedelta(days=1)),  # recent: kept
        (6, now),
    ]
    assert kept(times, cutoff=cutoff, bucket="hour") == {2, 3, 4, 5, 6}
    assert kept(times, cutoff=cutoff, bucket="day") == {3, 4, 5, 6}
    assert kept([(1, old), (2, old)], cutoff=cutoff, bucket="day") == {2}
    assert kept([(7, old)], cutoff=cutoff, bucket="day") == {7}  # the newest, however old


async def test_a_thinned_history_reads_and_records_on(team: Any, database_url: str) -> None:
    project_id, (alice,) = await team(1)
    app = alice.user.client.server.app
    history, retention = app[HISTORY], app[HISTORY_RETENTION]
    texts = [f"line {i}\n" * (i + 1) for i in range(120)]
    pid = uuid.UUID(project_id)
    for text in texts:
        await history.store.record(pid, "f.txt", text, authors=[], kind="disk")
    found = await history.store.find(pid, "f.txt")
    assert found is not None and found.last_version == 120
    with psycopg.connect(database_url) as conn:  # versions 1-100 are 40 days old, 10 a day
        conn.execute(
            "UPDATE file_versions SET time = now() - interval '40 days'"
            " + ((version - 1) / 10) * interval '1 day' WHERE history_id = %s AND version <= 100",
            (found.id,),
        )
    retention.policy = Retention(after_days=30, bucket="day")
    removed = await retention.sweep()
    assert removed == 90
    listed, _ = await history.store.versions(found.id, before=None, limit=1000)
    numbers = sorted(v.version for v in listed)
    assert numbers == [*range(10, 101, 10), *range(101, 121)]
    history.store.forget_texts()  # read from the rows, not the cache
    for version in numbers:
        assert await history.store.text(found.id, version) == texts[version - 1]
    assert await history.store.record(pid, "f.txt", "after\n", authors=[], kind="disk") == 121
    assert await history.store.text(found.id, 121) == "after\n"
    assert await retention.sweep() == 0
