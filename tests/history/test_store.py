"""HistoryStore's one-statement append (a history whose newest version this hub recorded)
against the general way: two stores on one database play two hubs recording the same
file, and every version reads back as the text that was recorded, in order, once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cocalc_k8s.keys import ENGINE
from cocalc_k8s.services.history.store import SNAPSHOT_EVERY, HistoryStore

pytestmark = pytest.mark.timeout(90)


async def stores(team: Any) -> tuple[uuid.UUID, HistoryStore, HistoryStore]:
    project_id, (alice,) = await team(1)
    engine = alice.user.client.server.app[ENGINE]
    return uuid.UUID(project_id), HistoryStore(engine), HistoryStore(engine)


async def texts(store: HistoryStore, project_id: uuid.UUID, path: str) -> list[str]:
    history = await store.find(project_id, path)
    assert history is not None
    fresh = HistoryStore(store.engine)  # nothing cached: every text from its rows
    return [await fresh.text(history.id, v) for v in range(1, history.last_version + 1)]


async def test_two_hubs_recording_one_file_keep_every_version_once(team: Any) -> None:
    project_id, a, b = await stores(team)
    author = [uuid.uuid4()]
    written = []
    for i, store in enumerate([a, a, b, a, b, b, a]):
        written.append(f"line {i}\n" * (i + 1))
        version = await store.record(project_id, "f.txt", written[-1], authors=author, kind="edit")
        assert version == i + 1  # a stale cache (the other store recorded) is not trusted
    assert await texts(a, project_id, "f.txt") == written


async def test_the_same_text_again_is_no_version_by_either_way(team: Any) -> None:
    project_id, a, b = await stores(team)
    assert await a.record(project_id, "f.txt", "one", authors=[], kind="disk") == 1
    assert await a.record(project_id, "f.txt", "one", authors=[], kind="disk") is None
    assert await b.record(project_id, "f.txt", "one", authors=[], kind="disk") is None
    assert await a.record(project_id, "f.txt", "two", authors=[], kind="disk") == 2
    assert await b.record(project_id, "f.txt", "two", authors=[], kind="disk") is None


async def test_snapshots_and_deltas_past_a_snapshot_boundary(team: Any) -> None:
    project_id, a, _ = await stores(team)
    written = [f"{'x' * 50}\nversion {i}\n" for i in range(SNAPSHOT_EVERY + 3)]
    for text in written:
        assert await a.record(project_id, "g.txt", text, authors=[], kind="edit") is not None
    assert await texts(a, project_id, "g.txt") == written


async def test_a_known_history_that_was_renamed_or_deleted_is_not_appended_to(
    team: Any,
) -> None:
    project_id, a, b = await stores(team)
    await a.record(project_id, "old.txt", "v1", authors=[], kind="edit")
    history = await a.find(project_id, "old.txt")
    assert history is not None
    async with a.engine.begin() as conn:  # what a rename through another hub does
        await conn.exec_driver_sql(
            "UPDATE file_histories SET path = 'new.txt' WHERE id = %(id)s", {"id": history.id}
        )
    assert await a.record(project_id, "old.txt", "a new file", authors=[], kind="edit") == 1
    assert await texts(a, project_id, "old.txt") == ["a new file"]
    assert await texts(b, project_id, "new.txt") == ["v1"]
