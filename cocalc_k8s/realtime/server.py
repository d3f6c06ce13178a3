"""The Socket.IO server of collaborative documents (namespace `/documents`).

Every event handler checks who is asking: the principal comes from the handshake request
(the hub's own middlewares identified it: session cookie or API key; engine.io refuses a
foreign Origin), and joining a document needs a role in its project. Open sockets are on
the hub's registry of live connections (services/live_connections), like terminals and
proxied WebSockets, so the same revocations end them, at once and on every hub: a socket
is registered for its credential (its end sends `revoked` and disconnects) and once per
project it has documents of or watches (its end sends `closed` for each document and
stops the watch; the socket stays for other projects).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web

from cocalc_k8s.core.errors import BadRequest, DomainError, Forbidden, NotFound
from cocalc_k8s.core.identity import Credential, Principal
from cocalc_k8s.realtime import awareness
from cocalc_k8s.realtime.parts import PART_BYTES, Assembler, PartError, split
from cocalc_k8s.realtime.who_is_here import WhoIsHere, doc_room, project_room
from cocalc_k8s.realtime.wire import DualServer
from cocalc_k8s.services.documents.commits import CommitFailed
from cocalc_k8s.services.documents.filetext import ReadOnly
from cocalc_k8s.services.documents.live import BadUpdate, Change, LiveDocument
from cocalc_k8s.services.documents.presence import Person
from cocalc_k8s.services.documents.service import DocumentService, clean_path
from cocalc_k8s.services.documents.store import StaleEpoch
from cocalc_k8s.services.live_connections import LiveConnections
from cocalc_k8s.services.projects import ProjectService, parse_project_id

log = logging.getLogger(__name__)

NAMESPACE = "/documents"
DISCONNECT_WAIT = 5.0  # seconds a closing hub gives its sockets to say goodbye
MAX_HTTP_BUFFER = 1024**2  # = the hub's request-body cap: a polling POST is no larger

Identify = Callable[[web.Request], Principal | None]
Ack = dict[str, Any]


def _error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


@dataclass
class _Socket:
    principal: Principal
    unregister: Callable[[], None] = lambda: None  # its credential's registration
    projects: dict[uuid.UUID, Callable[[], None]] = field(default_factory=dict)  # the same
    docs: dict[str, LiveDocument] = field(default_factory=dict)
    client_ids: dict[str, set[int]] = field(default_factory=dict)  # awareness, per doc
    watching: set[uuid.UUID] = field(default_factory=set)
    parts: Assembler = field(default_factory=lambda: Assembler(0))


class RealtimeHub:
    """Made when the app is (Socket.IO's routes must be added before the app starts);
    `documents`, `projects` and `live` are set once the services exist."""

    documents: DocumentService
    projects: ProjectService
    live: LiveConnections

    def __init__(
        self,
        *,
        identify: Identify,
        authenticated_at: Callable[[web.Request], float],
        trusted_origins: Callable[[web.Request], set[str]],
    ) -> None:
        self.identify = identify
        self.authenticated_at = authenticated_at
        self.trusted_origins = trusted_origins
        self.sio = DualServer(
            async_mode="aiohttp",
            max_http_buffer_size=MAX_HTTP_BUFFER,
            cors_allowed_origins=self._origin_allowed,
        )
        self._sockets: dict[str, _Socket] = {}
        self._awareness: dict[str, dict[int, awareness.ClientState]] = {}  # doc -> states
        self._owners: dict[str, dict[int, str]] = {}  # doc -> awareness client id -> sid
        self._forwarding: set[str] = set()  # docs whose changes this hub forwards
        self._tasks: set[asyncio.Task[None]] = set()  # closes scheduled by the registry
        self.who = WhoIsHere(self._emit, self._people_here)
        for event in ("connect", "disconnect", "join", "update", "awareness", "leave"):
            self.sio.on(event, getattr(self, f"on_{event}"), namespace=NAMESPACE)
        self.sio.on("watch", self.on_watch, namespace=NAMESPACE)
        self.sio.on("unwatch", self.on_unwatch, namespace=NAMESPACE)

    def attach(self, app: web.Application) -> None:
        self.sio.attach(app, socketio_path="socket.io")

    def _origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        request = environ.get("aiohttp.request")
        if origin is None or not isinstance(request, web.Request):
            return origin is None
        return origin.lower() in self.trusted_origins(request)

    # -- connecting ---------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        request = environ.get("aiohttp.request")
        principal = self.identify(request) if isinstance(request, web.Request) else None
        if principal is None or request is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "sign in or use an API key", {"code": "unauthorized"}
            )
        state = _Socket(principal)
        state.parts = Assembler(2 * self.documents.policy.max_bytes)
        self._sockets[sid] = state
        state.unregister = self.live.register(
            "realtime",
            principal.account_id,
            Credential.of(principal),
            None,
            lambda: self._later(self._revoke(sid, state)),
            authorised_at=self.authenticated_at(request),
        )

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        state = self._sockets.pop(sid, None)
        if state is None:
            return
        state.unregister()
        for unregister in state.projects.values():
            unregister()
        for doc in list(state.docs):
            await self._leave(sid, state, doc)

    def _hold_project(
        self, sid: str, state: _Socket, project_id: uuid.UUID, authorised_at: float
    ) -> None:
        """Register the socket's use of a project (once), so losing access ends it."""
        if project_id not in state.projects:
            state.projects[project_id] = self.live.register(
                "realtime",
                state.principal.account_id,
                Credential.of(state.principal),
                project_id,
                lambda: self._later(self._access_removed(sid, state, project_id)),
                authorised_at=authorised_at,
                counted=False,
            )

    def _let_go_of_project(self, state: _Socket, project_id: uuid.UUID) -> None:
        """The socket no longer uses the project: no documents of it, no watch."""
        in_use = project_id in state.watching or any(
            live.project_id == project_id for live in state.docs.values()
        )
        if not in_use and project_id in state.projects:
            state.projects.pop(project_id)()

    # -- joining --------------------------------------------------------------------

    async def on_join(self, sid: str, data: Any) -> Ack:
        state = self._sockets.get(sid)
        if state is None or not isinstance(data, dict):
            return _error("bad-request", "join takes {project_id, path, epoch, state_vector}")
        try:
            project_id = parse_project_id(str(data.get("project_id")))
            checked_at = time.monotonic()
            await self.projects.access(state.principal, project_id)
            path = clean_path(data.get("path"))
            live = await self.documents.open(project_id, path)
        except ReadOnly as exc:
            return {"ok": True, "doc": None, "read_only": True, "reason": exc.reason,
                    "message": exc.message, "size": exc.size}  # fmt: skip
        except DomainError as exc:
            return _domain_error(exc)
        except Exception:
            log.exception("join failed")
            return _error("unavailable", "the document could not be opened; try again")
        doc = str(live.id)
        epoch, vector = data.get("epoch"), data.get("state_vector")
        if vector is not None and not isinstance(vector, bytes):
            return _error("bad-request", "state_vector must be binary")
        stale = epoch is not None and epoch != live.epoch
        if sid not in self._sockets:  # it went while the document opened
            return _error("not-joined", "the socket closed")
        self._hold_project(sid, state, project_id, checked_at)
        if doc not in state.docs:
            self.documents.retain(live)
            state.docs[doc] = live
            self._forward(live)
        await self.sio.enter_room(sid, doc_room(doc), namespace=NAMESPACE)
        try:
            update = live.missing(None if stale or epoch is None else vector)
        except BadUpdate:
            update = live.missing(None)
            stale = epoch is not None
        parts = split(update)
        for part, piece in parts:
            await self._emit("update", {"doc": doc, "epoch": live.epoch, "update": piece,
                                        "seq": live.seq, "part": part}, to=sid)  # fmt: skip
        await self.who.changed(live)
        others = [s for s in self._awareness.get(doc, {}).values() if s.state is not None]
        return {
            "ok": True,
            "doc": doc,
            "epoch": live.epoch,
            "stale": stale,
            "read_only": False,
            "update": None if parts else update,
            "state_vector": live.state_vector(),
            "seq": live.seq,
            "awareness": awareness.encode(others) if others else None,
        }

    async def on_leave(self, sid: str, data: Any) -> Ack:
        state = self._sockets.get(sid)
        doc = data.get("doc") if isinstance(data, dict) else None
        if state is not None and isinstance(doc, str) and doc in state.docs:
            await self._leave(sid, state, doc)
        return {"ok": True}

    async def _leave(self, sid: str, state: _Socket, doc: str) -> None:
        live = state.docs.pop(doc)
        state.parts.drop(doc)
        await self.sio.leave_room(sid, doc_room(doc), namespace=NAMESPACE)
        gone = state.client_ids.pop(doc, set())
        states = self._awareness.get(doc, {})
        owners = self._owners.get(doc, {})
        removed = []
        for client_id in gone:
            owners.pop(client_id, None)
            old = states.pop(client_id, None)
            if old is not None:
                removed.append(awareness.ClientState(client_id, old.clock + 1, None))
        if removed:
            await self._emit("awareness", {"doc": doc, "update": awareness.encode(removed)},
                             room=doc_room(doc))  # fmt: skip
        self.documents.release(live)
        if live.clients <= 0:
            self._awareness.pop(doc, None)
            self._owners.pop(doc, None)
        self._let_go_of_project(state, live.project_id)
        await self.who.changed(live)

    # -- editing --------------------------------------------------------------------

    async def on_update(self, sid: str, data: Any) -> Ack:
        state = self._sockets.get(sid)
        if state is None or not isinstance(data, dict):
            return _error("bad-request", "update takes {doc, epoch, update}")
        doc, epoch, update = data.get("doc"), data.get("epoch"), data.get("update")
        live = state.docs.get(doc) if isinstance(doc, str) else None
        if live is None or not isinstance(doc, str):
            return _error("not-joined", "join the document first")
        if not isinstance(update, bytes) or not isinstance(epoch, int):
            return _error("bad-request", "update must be binary and epoch a number")
        if "part" in data:
            try:
                whole = state.parts.add(doc, data["part"], update)
            except PartError as exc:
                return _error("too-large" if "large" in str(exc) else "bad-update", str(exc))
            if whole is None:
                return {"ok": True, "partial": True}
            update = whole
        elif len(update) > PART_BYTES:
            return _error("too-large", f"send updates over {PART_BYTES} bytes in parts")
        try:
            seq = await live.submit(
                update, epoch=epoch, account_id=state.principal.account_id, origin=sid
            )
        except StaleEpoch:
            return _error("stale-epoch", "the document was rebuilt; resync")
        except BadUpdate as exc:
            return _error("bad-update", str(exc))
        except CommitFailed:  # (logged once per outage by the group commit)
            return _error("unavailable", "the update was not saved; send it again")
        except Exception:
            log.exception("document %s: update not committed", doc)
            return _error("unavailable", "the update was not saved; send it again")
        return {"ok": True, "seq": seq}

    def _forward(self, live: LiveDocument) -> None:
        """Make this hub forward the document's committed changes to its room (once)."""
        doc = str(live.id)
        if doc in self._forwarding:
            return
        self._forwarding.add(doc)

        async def changed(change: Change) -> None:
            skip = change.origin if isinstance(change.origin, str) else None
            message = {"doc": doc, "epoch": change.epoch, "seq": change.seq}
            pieces = split(change.update)
            if not pieces:  # one keystroke's update, typically: the hot path
                await self.sio.send_to_room("update", {**message, "update": change.update},
                                            namespace=NAMESPACE, room=doc_room(doc),
                                            skip_sid=skip)  # fmt: skip
            for part, piece in pieces:
                await self._emit("update", {**message, "update": piece, "part": part},
                                 room=doc_room(doc), skip_sid=skip)  # fmt: skip

        async def rebuilt(epoch: int) -> None:
            await self._emit("resync", {"doc": doc, "epoch": epoch, "reason": "rebuilt"},
                             room=doc_room(doc))  # fmt: skip

        live.listeners.append(changed)
        live.resync_listeners.append(rebuilt)

    async def on_awareness(self, sid: str, data: Any) -> None:
        state = self._sockets.get(sid)
        if state is None or not isinstance(data, dict):
            return
        doc, update = data.get("doc"), data.get("update")
        if not isinstance(doc, str) or doc not in state.docs or not isinstance(update, bytes):
            return
        try:
            decoded = awareness.decode(update)
        except awareness.BadAwareness:
            return
        mine = state.client_ids.setdefault(doc, set())
        states = self._awareness.setdefault(doc, {})
        owners = self._owners.setdefault(doc, {})
        accepted = []
        for entry in decoded:
            if owners.setdefault(entry.client_id, sid) != sid:
                continue  # another socket's client id: refused
            mine.add(entry.client_id)
            entry.state = awareness.with_identity(
                entry.state,
                name=state.principal.name,
                account_id=str(state.principal.account_id),
            )
            states[entry.client_id] = entry
            accepted.append(entry)
        if accepted:
            await self.sio.send_to_room("awareness",
                                        {"doc": doc, "update": awareness.encode(accepted)},
                                        namespace=NAMESPACE, room=doc_room(doc),
                                        skip_sid=sid)  # fmt: skip

    # -- who is here ------------------------------------------------------------------

    def _people_here(self, doc: str) -> list[Person]:
        """This hub's people in `doc` (one per account, its sockets counted)."""
        people: dict[uuid.UUID, Person] = {}
        for state in self._sockets.values():
            if doc in state.docs:
                p = state.principal
                known = people.get(p.account_id)
                clients = known.clients + 1 if known else 1
                people[p.account_id] = Person(str(p.account_id), p.name, clients)
        return list(people.values())

    async def on_watch(self, sid: str, data: Any) -> Ack:
        state = self._sockets.get(sid)
        if state is None or not isinstance(data, dict):
            return _error("bad-request", "watch takes {project_id}")
        try:
            project_id = parse_project_id(str(data.get("project_id")))
            checked_at = time.monotonic()
            await self.projects.access(state.principal, project_id)
        except DomainError as exc:
            return _domain_error(exc)
        if sid not in self._sockets:
            return _error("not-joined", "the socket closed")
        self._hold_project(sid, state, project_id, checked_at)
        state.watching.add(project_id)
        await self.sio.enter_room(sid, project_room(project_id), namespace=NAMESPACE)
        files = self.who.files(project_id, self.documents.open_documents())
        return {"ok": True, "files": files}

    async def on_unwatch(self, sid: str, data: Any) -> Ack:
        state = self._sockets.get(sid)
        if state is not None and isinstance(data, dict):
            try:
                project_id = parse_project_id(str(data.get("project_id")))
            except DomainError:
                return {"ok": True}
            state.watching.discard(project_id)
            self._let_go_of_project(state, project_id)
            await self.sio.leave_room(sid, project_room(project_id), namespace=NAMESPACE)
        return {"ok": True}

    # -- revocation (called by the registry of live connections) ----------------------

    def _later(self, closing: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(closing)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _access_removed(self, sid: str, state: _Socket, project_id: uuid.UUID) -> None:
        state.projects.pop(project_id, None)
        for doc, live in list(state.docs.items()):
            if live.project_id == project_id:
                await self._leave(sid, state, doc)
                await self._emit("closed", {"doc": doc, "code": "access-removed",
                    "message": "You are no longer a collaborator of this project."},
                    to=sid)  # fmt: skip
        state.watching.discard(project_id)
        await self.sio.leave_room(sid, project_room(project_id), namespace=NAMESPACE)

    async def _revoke(self, sid: str, state: _Socket) -> None:
        code = "signed-out" if state.principal.via == "session" else "key-revoked"
        await self._emit("revoked", {"code": code, "message": "Your sign-in ended."}, to=sid)
        await self.sio.disconnect(sid, namespace=NAMESPACE)

    async def close(self) -> None:
        """Disconnect every client (they reconnect, to this hub or another) and stop."""
        self.who.close()
        for task in list(self._tasks):
            task.cancel()
        await self._disconnect_all()  # or aiohttp waits for their handlers
        await self.sio.shutdown()

    async def _disconnect_all(self) -> None:
        """engine.io's `disconnect()` of every socket, but bounded: a socket whose writer
        has already gone (its client closed the connection just before) waits for ever
        for its close packet to be written (python-engineio's close waits for its queue
        to drain); a hub's shutdown hung on one under load."""
        eio = self.sio.eio
        sockets = list(eio.sockets.values())
        if not sockets:
            return
        reason = eio.reason.SERVER_DISCONNECT
        closing = [asyncio.create_task(socket.close(reason=reason)) for socket in sockets]
        _, stuck = await asyncio.wait(closing, timeout=DISCONNECT_WAIT)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        eio.sockets = {}

    async def _emit(self, event: str, data: Any, **target: Any) -> None:
        await self.sio.emit(event, data, namespace=NAMESPACE, **target)


REALTIME = web.AppKey("realtime", RealtimeHub)  # beside keys.py: web must not import it


def _domain_error(exc: DomainError) -> Ack:
    if isinstance(exc, NotFound):
        return _error("not-found", "no such project")
    if isinstance(exc, Forbidden):
        return _error("forbidden", str(exc))
    if isinstance(exc, BadRequest):
        return _error("bad-request", str(exc))
    return _error("bad-request", str(exc))
