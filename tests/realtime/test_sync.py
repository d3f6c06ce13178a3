"""Joining and editing a document: clients converge, every acknowledged update is a row
before anyone sees it, large documents sync in parts over WebSocket and polling."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from tests.realtime.client import wait_for


async def test_two_clients_converge_and_updates_are_rows_before_the_ack(
    team: Any, database_url: str
) -> None:
    project_id, (alice, bob) = await team(2)
    a, b = alice.client(), bob.client()
    await a.connect()
    await b.connect()
    ack = await a.join(project_id, "notes.txt")
    assert ack["ok"] and ack["epoch"] == 1 and not ack["stale"] and a.text == ""
    await b.join(project_id, "notes.txt")
    seen_rows: list[int] = []

    def check_row(_: bytes) -> None:  # b sees an update only once it is stored
        with psycopg.connect(database_url) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM document_updates WHERE document_id = %s", (a.doc_id,)
            ).fetchone()
        seen_rows.append(count)

    b.on_remote = check_row
    acks = []
    for i in range(20):
        acks.append(await a.append(f"a{i} "))
    await asyncio.gather(*(b.append(f"b{i} ") for i in range(5)))
    assert all(x["ok"] for x in acks)
    await wait_for(lambda: a.text == b.text and len(seen_rows) == 20)
    assert sorted(seen_rows) == seen_rows and seen_rows[0] >= 1
    for i in range(20):
        assert a.text.count(f"a{i} ") == 1
    for i in range(5):
        assert b.text.count(f"b{i} ") == 1
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT seq, source, account_id FROM document_updates WHERE document_id = %s"
            " ORDER BY seq",
            (a.doc_id,),
        ).fetchall()
    assert [r[0] for r in rows] == list(range(1, 26))
    assert {str(r[2]) for r in rows} == {alice.user.account_id, bob.user.account_id}
    assert acks[-1]["seq"] in [r[0] for r in rows]
    await a.close()
    await b.close()


async def test_a_four_megabyte_file_opens_over_websocket_and_polling(
    team: Any, tmp_path: Any
) -> None:
    project_id, (alice, bob) = await team(2)
    big = "".join(f"line {i:07d} of a large file\n" for i in range(150_000))  # ~4.3 MB
    assert len(big) > 4_000_000
    a = alice.client()
    await a.connect()
    await a.join(project_id, "big.txt")
    ack = await a.append(big)  # sent in parts
    assert ack["ok"] and "seq" in ack
    for transports in (["websocket"], ["polling"]):
        c = bob.client()
        await c.connect(transports)
        ack = await c.join(project_id, "big.txt")
        assert ack["ok"] and ack["update"] is None  # it came in parts
        assert c.text == big
        await c.close()
    await a.close()


async def test_a_stranger_cannot_join_read_or_write(team: Any, make_client: Any) -> None:
    project_id, (alice,) = await team(1)
    hub = alice.user.client
    from tests.realtime.conftest import member

    stranger = await member(await make_client(same_hub_as=hub))
    a = alice.client()
    await a.connect()
    await a.join(project_id, "secret.txt")
    await a.append("top secret")
    s = stranger.client()
    await s.connect()
    ack = await s.join(project_id, "secret.txt")
    assert ack == {"ok": False, "error": {"code": "not-found", "message": "no such project"}}
    ack = await s.call("update", {"doc": a.doc_id, "epoch": 1, "update": b"\x00\x00"})
    assert ack["error"]["code"] == "not-joined"
    await s.call("awareness", {"doc": a.doc_id, "update": b"\x00"})
    assert "top secret" not in repr(s.events)
    await s.close()
    await a.close()


async def test_awareness_is_relayed_under_the_real_account_and_presence_follows(
    team: Any,
) -> None:
    from cocalc_k8s.realtime import awareness

    project_id, (alice, bob) = await team(2)
    a, b, b2 = alice.client(), bob.client(), bob.client()
    for c in (a, b, b2):
        await c.connect()
    await a.join(project_id, "cursors.txt")
    await b.join(project_id, "cursors.txt")
    claim = awareness.encode(
        [awareness.ClientState(42, 1, {"user": {"name": "Alice", "color": "#f00"}, "cursor": 3})]
    )
    await b.call("awareness", {"doc": b.doc_id, "update": claim})
    await wait_for(lambda: any(e == "awareness" for e, _ in a.events))
    ((_, message),) = [(e, d) for e, d in a.events if e == "awareness"]
    (state,) = awareness.decode(message["update"])
    assert state.client_id == 42 and state.state["cursor"] == 3
    assert state.state["user"]["account_id"] == bob.user.account_id  # not a name of its choice
    assert state.state["user"]["color"] == "#f00"

    ack = await b2.join(project_id, "cursors.txt")  # a latecomer sees who is there
    (present,) = awareness.decode(ack["awareness"])
    assert present.client_id == 42
    await b2.call("awareness", {"doc": b2.doc_id, "update": claim})  # someone else's id
    await b2.append("x")  # (ordered after the awareness message)
    assert len([e for e, _ in a.events if e == "awareness"]) == 1

    people = [d["people"] for e, d in a.events if e == "presence"][-1]
    assert {p["account_id"]: p["clients"] for p in people} == {
        alice.user.account_id: 1,
        bob.user.account_id: 2,
    }
    await b.close()
    await wait_for(lambda: len([e for e, _ in a.events if e == "awareness"]) == 2)
    (_, gone) = [(e, d) for e, d in a.events if e == "awareness"][-1]
    assert [(s.client_id, s.state) for s in awareness.decode(gone["update"])] == [(42, None)]
    await a.close()
    await b2.close()
