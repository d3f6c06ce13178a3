"""A document leaves memory once its last client has gone (after a short grace), with its
pending save flushed."""

from __future__ import annotations

import uuid
from typing import Any

from cocalc_k8s.keys import DOCUMENTS
from tests.realtime.client import wait_for
from tests.realtime.test_files import home, read


async def test_documents_leave_memory_with_their_saves_flushed(team: Any) -> None:
    project_id, (alice,) = await team(1)
    documents = alice.user.client.server.app[DOCUMENTS]
    a = alice.client()
    await a.connect()
    ids = []
    for i in range(200):
        assert (await a.join(project_id, f"many/{i}.txt"))["ok"]
        ids.append(uuid.UUID(a.doc_id or ""))
    await a.append("last words")  # its save is not due yet when the client leaves
    assert len(documents.open_documents()) == 200
    for doc_id in ids:
        assert (await a.call("leave", {"doc": str(doc_id)}))["ok"]
    await wait_for(lambda: documents.open_documents() == [], within=15)
    # The writer locks go with them (the last ones just after).
    await wait_for(lambda: not any(documents.locks.holds(d) for d in ids), within=5)
    assert read(home(alice, project_id) / "many" / "199.txt") == "last words"
    await a.close()
