"""Two hubs on one database serve the same document: their clients converge (update rows
plus NOTIFY), exactly one of them writes the file, and its TimeTravel versions name the
authors of both hubs' updates."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from cocalc_k8s.keys import DOCUMENTS
from tests.history.test_api import history, wait_async
from tests.realtime.client import DocClient, wait_for
from tests.realtime.test_files import home, read


async def test_clients_of_two_hubs_converge_and_one_hub_writes(team: Any, make_client: Any) -> None:
    project_id, (alice, bob) = await team(2)
    other = await make_client()  # same database, same storage
    a = alice.client()
    b = DocClient(str(other.make_url("")).rstrip("/"), key=bob.key)
    await a.connect()
    await b.connect()
    await a.join(project_id, "shared.txt")
    await b.join(project_id, "shared.txt")

    async def typing(client: DocClient, name: str) -> None:
        for i in range(40):
            assert (await client.append(f"<{name}{i}>"))["ok"]

    await asyncio.gather(typing(a, "a"), typing(b, "b"))
    await wait_for(lambda: a.text == b.text and len(a.text) == len(b.text) > 0, within=5)
    for name in "ab":
        for i in range(40):
            assert a.text.count(f"<{name}{i}>") == 1
    file = home(alice, project_id) / "shared.txt"
    await wait_for(lambda: read(file) == a.text, within=5)
    doc_id = uuid.UUID(a.doc_id or "")
    writers = [hub.server.app[DOCUMENTS].locks.holds(doc_id) for hub in (alice.user.client, other)]
    assert sorted(writers) == [False, True]
    # The writer heard the other hub's updates without their authors (NOTIFY carries
    # none): its versions still name both.
    await a.close()
    await b.close()  # both flush a version

    async def both_authors() -> bool:
        versions = (await history(alice, project_id, "shared.txt"))["versions"]
        named = {x["account_id"] for v in versions if v["kind"] == "edit" for x in v["authors"]}
        return named == {alice.user.account_id, bob.user.account_id}

    await wait_async(both_authors, within=10)


def people(events: list[tuple[str, Any]], path: str) -> list[tuple[str, int]]:
    """The last `presence` of `path` a client got: (account id, clients) pairs."""
    found = [d for e, d in events if e == "presence" and d.get("path") == path]
    return sorted((p["account_id"], p["clients"]) for p in found[-1]["people"]) if found else []


async def test_who_is_here_covers_every_hub(team: Any, make_client: Any) -> None:
    project_id, (alice, bob) = await team(2)
    other = await make_client()
    other_url = str(other.make_url("")).rstrip("/")
    a = alice.client()
    b = DocClient(other_url, key=bob.key)
    watcher = DocClient(other_url, key=bob.key)  # the file listing, on the other hub
    for client in (a, b, watcher):
        await client.connect()
    assert (await watcher.call("watch", {"project_id": project_id}))["ok"]
    await a.join(project_id, "here.txt")
    ada, bea = alice.user.account_id, bob.user.account_id
    await wait_for(lambda: people(watcher.events, "here.txt") == [(ada, 1)])
    await b.join(project_id, "here.txt")
    both = sorted([(ada, 1), (bea, 1)])
    await wait_for(lambda: people(a.events, "here.txt") == both)
    await wait_for(lambda: people(b.events, "here.txt") == both)
    # A newcomer's `watch` answer includes the other hub's people.
    late = DocClient(other_url, key=bob.key)
    await late.connect()
    ack = await late.call("watch", {"project_id": project_id})
    assert sorted((p["account_id"], p["clients"]) for p in ack["files"]["here.txt"]) == both
    await a.close()  # alice leaves: the other hub's clients see it
    await wait_for(lambda: people(b.events, "here.txt") == [(bea, 1)])
    await wait_for(lambda: people(watcher.events, "here.txt") == [(bea, 1)])
    for client in (b, watcher, late):
        await client.close()
