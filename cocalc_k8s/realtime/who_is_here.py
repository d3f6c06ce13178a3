"""The `presence` events ("who is here"): the people of a document on this hub merged with
those on the other hubs (services/documents/presence), sent to the document's room and to
the sockets watching its project, whenever either side changes.

A person is an account: its clients on every hub are added up (`clients`), so an account
with a tab on each of two hubs is one person with two clients.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cocalc_k8s.services.documents.live import LiveDocument
from cocalc_k8s.services.documents.presence import Here, Person, PresenceExchange

Emit = Callable[..., Awaitable[None]]  # (event, data, room=...)
Local = Callable[[str], list[Person]]  # doc -> this hub's people in it


def doc_room(doc: str) -> str:
    return f"doc:{doc}"


def project_room(project_id: uuid.UUID | str) -> str:
    return f"project:{project_id}"


def merge(people: Iterable[Person]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for p in people:
        person = merged.setdefault(p.account_id, {**p.as_json(), "clients": 0})
        person["clients"] += p.clients
    return list(merged.values())


class WhoIsHere:
    exchange: PresenceExchange  # set once the services exist

    def __init__(self, emit: Emit, local: Local) -> None:
        self.emit = emit
        self.local = local
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, exchange: PresenceExchange) -> None:
        self.exchange = exchange
        exchange.on_change.append(self._elsewhere)

    def people(self, doc: str) -> list[dict[str, Any]]:
        return merge([*self.local(doc), *self.exchange.others(doc)])

    async def changed(self, live: LiveDocument) -> None:
        """This hub's people of `live` changed (a join or a leave)."""
        doc = str(live.id)
        self.exchange.publish(doc, str(live.project_id), live.path, self.local(doc))
        await self._send(doc, str(live.project_id), live.path)

    def files(self, project_id: uuid.UUID, open_here: Iterable[LiveDocument]) -> dict[str, Any]:
        """The `watch` answer: path -> people, for the project's documents with anyone in."""
        paths = {doc: here.path for doc, here in self.exchange.in_project(str(project_id)).items()}
        for live in open_here:
            if live.project_id == project_id and live.clients > 0:
                paths[str(live.id)] = live.path
        found = {path: self.people(doc) for doc, path in paths.items()}
        return {path: people for path, people in found.items() if people}

    def _elsewhere(self, doc: str, here: Here) -> None:
        task = asyncio.get_running_loop().create_task(self._send(doc, here.project_id, here.path))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, doc: str, project_id: str, path: str) -> None:
        message = {"project_id": project_id, "path": path, "doc": doc,
                   "people": self.people(doc)}  # fmt: skip
        await self.emit("presence", message, room=doc_room(doc))
        await self.emit("presence", message, room=project_room(project_id))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
