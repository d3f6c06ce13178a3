"""The presence exchange between hubs, without a database: another hub's announcement is
merged, a payload that would not fit NOTIFY is cut to fit, and a hub that goes quiet
(killed) drops off by itself."""

from __future__ import annotations

import json
from typing import Any

from cocalc_k8s.services.documents.presence import MAX_PAYLOAD, Here, Person, PresenceExchange
from tests.realtime.client import wait_for


def announcement(hub: str, doc: str, people: list[list[Any]]) -> str:
    return json.dumps({"hub": hub, "doc": doc, "project": "p1", "path": "a.txt", "people": people})


async def test_other_hubs_are_merged_and_a_quiet_one_expires() -> None:
    exchange = PresenceExchange(None, heartbeat=0.05, expires=0.3)  # type: ignore[arg-type]
    changes: list[tuple[str, Here]] = []
    exchange.on_change.append(lambda doc, here: changes.append((doc, here)))
    exchange.start()
    try:
        exchange.notified(announcement("h2", "d1", [["acc1", "Ada", 2]]))
        exchange.notified(announcement("h3", "d1", [["acc2", "Bea", 1]]))
        exchange.notified(announcement(exchange.hub, "d1", [["me", "Me", 1]]))  # our own echo
        exchange.notified("not json")
        assert sorted(p.name for p in exchange.others("d1")) == ["Ada", "Bea"]
        assert set(exchange.in_project("p1")) == {"d1"} and exchange.in_project("p2") == {}
        exchange.notified(announcement("h3", "d1", []))  # Bea left
        assert exchange.others("d1") == [Person("acc1", "Ada", 2)]
        await wait_for(lambda: exchange.others("d1") == [], within=5)  # h2 went quiet
        assert changes[-1][0] == "d1" and changes[-1][1].people == ()
    finally:
        await exchange.close()


def test_a_crowd_is_cut_to_fit_a_notification() -> None:
    exchange = PresenceExchange(None)  # type: ignore[arg-type]
    crowd = [Person(f"{i:036d}", "N" * 100, 1) for i in range(500)]
    exchange.publish("d1", "p1", "a.txt", crowd)
    payload = exchange._payload("d1")
    assert payload is not None and len(payload.encode()) <= MAX_PAYLOAD
    assert 0 < len(json.loads(payload)["people"]) < 500
