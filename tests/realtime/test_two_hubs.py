"""Two hubs on one database serve the same document: their clients converge (update rows
plus NOTIFY), and exactly one of them writes the file."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from cocalc_k8s.keys import DOCUMENTS
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
    await a.close()
    await b.close()
