"""Who is in which document across every hub on the database ("who is here").

Each hub knows its own sockets; this exchange tells the other hubs. When the people of a
document on this hub change, the hub announces them (`publish`) on the NOTIFY channel
`cocalc_presence`: a small JSON object `{"hub", "doc", "project", "path", "people":
[[account_id, name, clients], ...]}` (an empty list: nobody here any more). Presence is
ephemeral and small, so it travels in the payload (capped below NOTIFY's 8,000 bytes: the
list is cut, never the message). A hub repeats its non-empty announcements every
`heartbeat` seconds and forgets another hub's after `expires` seconds without one, so a
killed hub's people drop off by themselves. A hub that starts, or whose listener
reconnects, says hello (`{"hub", "hello": true}`) and the others announce at once.

Announcements are sent by one loop, newest state per document, several per statement:
quick changes coalesce and never overtake one another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core.tasks import cancel

log = logging.getLogger(__name__)

CHANNEL = "cocalc_presence"
MAX_PAYLOAD = 7_900  # NOTIFY refuses 8,000 bytes and more
_NOTIFY_EACH = text(
    "SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) AS payload"
)


@dataclass(frozen=True, slots=True)
class Person:
    account_id: str
    name: str
    clients: int

    def as_json(self) -> dict[str, object]:
        return {"account_id": self.account_id, "name": self.name, "clients": self.clients}


@dataclass(frozen=True, slots=True)
class Here:
    """The people of one document on one hub."""

    project_id: str
    path: str
    people: tuple[Person, ...]
    seen: float = 0.0  # time.monotonic() of the announcement (other hubs' entries)


Changed = Callable[[str, Here], None]  # (doc, the document's project and path)


class PresenceExchange:
    def __init__(
        self, engine: AsyncEngine, *, heartbeat: float = 15.0, expires: float = 45.0
    ) -> None:
        self.engine = engine
        self.hub = uuid.uuid4().hex
        self.heartbeat = heartbeat
        self.expires = expires
        self.on_change: list[Changed] = []
        self._mine: dict[str, Here] = {}  # doc -> what this hub last announced
        self._theirs: dict[str, dict[str, Here]] = {}  # doc -> hub -> their announcement
        self._dirty: dict[str, None] = {}  # docs to announce, in order
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- this hub's people ----------------------------------------------------------

    def publish(self, doc: str, project_id: str, path: str, people: list[Person]) -> None:
        """The people of `doc` on this hub are now `people` (announced soon, in order)."""
        if people:
            self._mine[doc] = Here(project_id, path, tuple(people))
        elif self._mine.pop(doc, None) is None:
            return  # nobody was here, nobody is: nothing to say
        else:
            self._mine[doc] = Here(project_id, path, ())  # said once, then forgotten
        self._dirty[doc] = None
        self._wake.set()

    # -- the other hubs' ----------------------------------------------------------------

    def others(self, doc: str) -> list[Person]:
        """The people of `doc` on the other hubs (one entry per hub and account)."""
        return [p for here in self._theirs.get(doc, {}).values() for p in here.people]

    def in_project(self, project_id: str) -> dict[str, Here]:
        """The other hubs' documents of a project with anyone in them: doc -> Here."""
        found: dict[str, Here] = {}
        for doc, hubs in self._theirs.items():
            for here in hubs.values():
                if here.project_id == project_id and here.people:
                    merged = found.get(doc)
                    people = (merged.people if merged else ()) + here.people
                    found[doc] = Here(here.project_id, here.path, people)
        return found

    def notified(self, payload: str) -> None:
        """NOTIFY callback (`cocalc_presence`)."""
        try:
            message = json.loads(payload)
            hub = str(message["hub"])
            if hub == self.hub:
                return
            if message.get("hello"):
                self._announce_all()
                return
            doc = str(message["doc"])
            here = Here(
                str(message["project"]),
                str(message["path"]),
                tuple(Person(str(a), str(n), int(c)) for a, n, c in message["people"]),
                time.monotonic(),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("bad presence notification %.200r", payload)
            return
        hubs = self._theirs.setdefault(doc, {})
        if here.people:
            hubs[hub] = here
        else:
            hubs.pop(hub, None)
            if not hubs:
                del self._theirs[doc]
        self._changed(doc, here)

    def hello(self) -> None:
        """Listener (re)connected: ask the other hubs to announce (we may have missed some),
        and announce ours (they may have missed them)."""
        self._dirty[""] = None  # "" stands for the hello itself
        self._announce_all()

    def _announce_all(self) -> None:
        for doc in self._mine:
            self._dirty[doc] = None
        self._wake.set()

    def _changed(self, doc: str, here: Here) -> None:
        for callback in self.on_change:
            try:
                callback(doc, here)
            except Exception:
                log.exception("presence callback failed")

    # -- the loops ----------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_forever()), loop.create_task(self._beat())]

    async def close(self) -> None:
        for task in self._tasks:
            await cancel(task)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            self._expire()
            self._announce_all()

    def _expire(self) -> None:
        oldest = time.monotonic() - self.expires
        for doc, hubs in list(self._theirs.items()):
            for hub, here in list(hubs.items()):
                if here.seen < oldest:  # that hub went quiet: dead, or cut off
                    del hubs[hub]
                    if not hubs:
                        del self._theirs[doc]
                    self._changed(doc, Here(here.project_id, here.path, ()))

    async def _send_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            docs, self._dirty = list(self._dirty), {}
            payloads = [p for p in map(self._payload, docs) if p is not None]
            for doc in docs:
                here = self._mine.get(doc)
                if here is not None and not here.people:
                    del self._mine[doc]  # its "nobody" goes out now, once
            if not payloads:
                continue
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(_NOTIFY_EACH, {"channel": CHANNEL, "payloads": payloads})
            except Exception as exc:  # the database is away: the heartbeat says it again
                log.warning("presence not announced: %s", exc)

    def _payload(self, doc: str) -> str | None:
        if doc == "":
            return json.dumps({"hub": self.hub, "hello": True})
        here = self._mine.get(doc)
        if here is None:
            return None
        people = [[p.account_id, p.name, p.clients] for p in here.people]
        while True:
            payload = json.dumps(
                {"hub": self.hub, "doc": doc, "project": here.project_id, "path": here.path,
                 "people": people}, ensure_ascii=False,
            )  # fmt: skip
            if len(payload.encode()) <= MAX_PAYLOAD or not people:
                return payload if len(payload.encode()) <= MAX_PAYLOAD else None
            people = people[: len(people) // 2]  # a crowd: the first half of it
