"""No duplicated text, ever: a document rebuilt from disk (its stored state gone) gets a
new epoch, and a client that kept the old one open resyncs instead of merging, keeping
its unsent edits as a diff."""

from __future__ import annotations

from typing import Any

import psycopg
from pycrdt import Doc, Text

from tests.realtime.client import wait_for
from tests.realtime.test_files import home, read


async def test_a_stale_client_after_a_rebuild_gets_no_duplicated_text(
    team: Any, make_client: Any, database_url: str
) -> None:
    project_id, (alice,) = await team(1)
    file = home(alice, project_id) / "essay.txt"
    file.parent.mkdir(parents=True)
    file.write_text("Once upon a time\n")
    a = alice.client()
    await a.connect()
    await a.join(project_id, "essay.txt")
    await a.append("there was a hub.\n")
    await wait_for(lambda: read(file) == "Once upon a time\nthere was a hub.\n", within=5)
    old_epoch, doc_id = a.epoch, a.doc_id
    await alice.user.client.close()  # the hub goes away
    with psycopg.connect(database_url) as conn:  # and with it the stored state
        conn.execute("DELETE FROM document_updates WHERE document_id = %s", (doc_id,))
        conn.execute("DELETE FROM document_checkpoints WHERE document_id = %s", (doc_id,))

    a.ytext.insert(len(a.ytext), "The end.\n")  # typed while disconnected, unsent
    stale = a.doc.get_update()
    hub = await make_client()  # a new hub on the same storage and database
    await a.reconnect(str(hub.make_url("")).rstrip("/"))
    ack = await a.join(project_id, "essay.txt")
    assert ack["ok"] and ack["stale"] and ack["epoch"] == old_epoch + 1
    expected = "Once upon a time\nthere was a hub.\nThe end.\n"
    assert a.text == expected  # no duplicate: the old document was not merged
    await wait_for(lambda: read(file) == expected, within=5)

    # What the epoch prevents: the same rebuilt state merged with the stale copy.
    naive: Doc[Text] = Doc()
    naive_text = naive.get("text", type=Text)
    naive.apply_update(ack["update"])
    naive.apply_update(stale)
    assert str(naive_text).count("there was a hub.") == 2

    # Updates made against the old epoch are refused, never merged.
    refused = await a.call("update", {"doc": doc_id, "epoch": old_epoch, "update": stale})
    assert refused["error"]["code"] == "stale-epoch"
    assert a.text == expected
    await a.close()
