"""Group commit: the updates of many documents queued in one tick are one transaction;
each document gets its own consecutive seqs, a stale epoch fails only its own batch, and
every moved document is announced by a NOTIFY pointer (one notification per round)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

from cocalc_k8s.keys import DOCUMENTS
from cocalc_k8s.services.documents.store import CHANNEL, Entry, StaleEpoch


def entries(n: int, tag: str) -> list[Entry]:
    return [Entry(f"{tag}-{i}".encode(), None, "client") for i in range(n)]


async def documents_and_listener(
    team: Any, database_url: str, count: int, prefix: str
) -> tuple[Any, list[uuid.UUID], psycopg.AsyncConnection[Any]]:
    """A hub's document service, `count` new documents, and a connection listening to
    their notifications."""
    project_id, (alice,) = await team(1)
    service = alice.user.client.server.app[DOCUMENTS]
    docs = [
        await service.store.ensure(uuid.UUID(project_id), f"{prefix}{i}.txt") for i in range(count)
    ]
    listener = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    await listener.execute(f"LISTEN {CHANNEL}")
    return service, docs, listener


async def test_one_round_commits_every_document_queued_in_a_tick(
    team: Any, database_url: str
) -> None:
    service, docs, listener = await documents_and_listener(team, database_url, 30, "g")
    rounds = service.commits.rounds

    lasts = await asyncio.gather(
        *(service.commits.append(d, 1, entries(1 + i % 3, str(i))) for i, d in enumerate(docs))
    )

    assert service.commits.rounds == rounds + 1  # one transaction for all 30
    assert lasts == [1 + i % 3 for i in range(30)]
    again = await asyncio.gather(*(service.commits.append(d, 1, entries(2, "x")) for d in docs))
    assert again == [1 + i % 3 + 2 for i in range(30)]
    with psycopg.connect(database_url) as conn:
        for i, d in enumerate(docs):
            rows = conn.execute(
                "SELECT seq, data FROM document_updates WHERE document_id = %s ORDER BY seq",
                (d,),
            ).fetchall()
            expected = [f"{i}-{k}".encode() for k in range(1 + i % 3)] + [b"x-0", b"x-1"]
            assert [bytes(r[1]) for r in rows] == expected
            assert [r[0] for r in rows] == list(range(1, len(expected) + 1))
            (seq,) = conn.execute("SELECT seq FROM documents WHERE id = %s", (d,)).fetchone()
            assert seq == len(expected)
    notifications: list[list[str]] = []
    async with asyncio.timeout(10):
        async for note in listener.notifies():
            notifications.append(note.payload.split(","))
            if sum(map(len, notifications)) == 60:
                break
    assert len(notifications) == 2  # a round's documents share one
    pointers = {p for n in notifications for p in n}
    assert f"{docs[4]} 1 {lasts[4]}" in pointers and f"{docs[4]} 1 {again[4]}" in pointers
    await listener.close()


async def test_a_stale_epoch_fails_only_its_own_batch(team: Any, database_url: str) -> None:
    project_id, (alice,) = await team(1)
    service = alice.user.client.server.app[DOCUMENTS]
    fresh = await service.store.ensure(uuid.UUID(project_id), "fresh.txt")
    rebuilt = await service.store.ensure(uuid.UUID(project_id), "rebuilt.txt")
    await service.store.rebuild(rebuilt, Entry(b"load", None, "load"))  # now epoch 2

    ok, stale = await asyncio.gather(
        service.commits.append(fresh, 1, entries(2, "f")),
        service.commits.append(rebuilt, 1, entries(1, "r")),
        return_exceptions=True,
    )

    assert ok == 2
    assert isinstance(stale, StaleEpoch) and stale.epoch == 2
    with psycopg.connect(database_url) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM document_updates WHERE document_id = %s", (rebuilt,)
        ).fetchone()
    assert count == 1  # only its rebuild's own row
    with pytest.raises(StaleEpoch):
        await service.commits.append(uuid.uuid4(), 1, entries(1, "gone"))


async def test_a_round_of_many_documents_splits_its_notification(
    team: Any, database_url: str
) -> None:
    """NOTIFY refuses payloads of 8,000 bytes or more (the whole round would fail): 250
    documents' pointers go out in three notifications."""
    service, docs, listener = await documents_and_listener(team, database_url, 250, "m")
    rounds = service.commits.rounds
    lasts = await asyncio.gather(*(service.commits.append(d, 1, entries(1, "m")) for d in docs))
    assert lasts == [1] * 250 and service.commits.rounds == rounds + 1
    notifications: list[str] = []
    async with asyncio.timeout(10):
        async for note in listener.notifies():
            notifications.append(note.payload)
            if sum(len(n.split(",")) for n in notifications) == 250:
                break
    assert len(notifications) == 3 and all(len(n.encode()) < 8000 for n in notifications)
    assert {p.split()[0] for n in notifications for p in n.split(",")} == set(map(str, docs))
    await listener.close()
