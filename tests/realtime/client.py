"""A Python client of the realtime protocol (docs/realtime.md), for tests and benchmarks:
python-socketio's AsyncClient and a pycrdt Doc."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import socketio
from pycrdt import Doc, Text

from cocalc_k8s.realtime.parts import split
from cocalc_k8s.services.documents.textdiff import apply_diff, diff, merge3

NS = "/documents"


class DocClient:
    def __init__(
        self,
        url: str,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        encoding: str = "default",
    ):
        self.url = url
        self.encoding = encoding  # Socket.IO's: "default" (JSON + attachments) or "msgpack"
        self.headers = dict(headers or {})
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.sio = self._new_socket()
        self.doc_id: str | None = None
        self.epoch: int | None = None
        self.project_id = ""
        self.path = ""
        self._new_doc()
        self._parts: dict[str, list[bytes]] = {}
        self._early: list[dict[str, Any]] = []
        self.events: list[tuple[str, Any]] = []
        self.on_remote: Callable[[bytes], None] | None = None
        self.call_timeout = 60.0
        self.confirmed = ""  # the text without local edits the hub has not acknowledged

    def _new_socket(self) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False, serializer=self.encoding)
        for event in ("presence", "awareness", "closed", "revoked", "resync", "connect_error"):
            sio.on(event, self._recorder(event), namespace=NS)
        sio.on("update", self._on_update, namespace=NS)
        return sio

    async def reconnect(self, url: str) -> None:
        """A new connection (to another hub, say), keeping this client's document."""
        if self.sio.connected:
            await self.sio.disconnect()
        self.url, self.sio = url, self._new_socket()
        await self.connect()

    def _new_doc(self) -> None:
        self.doc: Doc[Text] = Doc()
        self.ytext: Text = self.doc.get("text", type=Text)
        self._local: list[bytes] = []  # the updates of local transactions, as Yjs emits them
        self._applying = False
        self.doc.observe(lambda event: None if self._applying else self._local.append(event.update))

    def _recorder(self, event: str) -> Callable[[Any], None]:
        def record(data: Any) -> None:
            self.events.append((event, data))

        return record

    async def connect(self, transports: list[str] | None = None) -> None:
        await self.sio.connect(
            self.url,
            headers=self.headers,
            namespaces=[NS],
            transports=transports or ["websocket"],
            socketio_path="socket.io",
            wait_timeout=10,
        )

    async def close(self) -> None:
        await self.sio.disconnect()

    @property
    def text(self) -> str:
        return str(self.ytext)

    def _on_update(self, data: dict[str, Any]) -> None:
        if self.doc_id is None:
            self._early.append(data)  # the first sync's parts come before the join ack
            return
        if data.get("doc") != self.doc_id or data.get("epoch") != self.epoch:
            return
        update = data["update"]
        part = data.get("part")
        if part is not None:
            pieces = self._parts.setdefault(part["id"], [])
            pieces.append(update)
            if len(pieces) < part["count"]:
                return
            update = b"".join(self._parts.pop(part["id"]))
        self._apply(update)
        self.confirmed = self.text  # (a test client: its edits are acknowledged in order)
        if self.on_remote is not None:
            self.on_remote(update)

    async def call(self, event: str, data: Any) -> Any:
        return await self.sio.call(event, data, namespace=NS, timeout=self.call_timeout)

    async def join(self, project_id: str, path: str, *, fresh: bool = False) -> dict[str, Any]:
        self.project_id, self.path = project_id, path
        epoch = None if fresh else self.epoch
        if fresh:
            self._new_doc()
        vector = self.doc.get_state() if epoch is not None else None
        self.doc_id = None
        self._parts, self._early = {}, []
        ack: dict[str, Any] = await self.call(
            "join",
            {"project_id": project_id, "path": path, "epoch": epoch, "state_vector": vector},
        )
        if not ack.get("ok") or ack.get("read_only"):
            return ack
        mine = None
        if ack["stale"]:  # resync from scratch, keeping unsent edits as a diff
            mine, theirs = self.text, self.confirmed
            self._new_doc()
        self.doc_id, self.epoch = ack["doc"], ack["epoch"]
        if ack["update"] is not None:
            self._apply(ack["update"])
        else:
            await wait_for(
                lambda: any(
                    d.get("part", {}).get("index") == d.get("part", {}).get("count", 0) - 1
                    for d in self._early
                ),
                within=30,
            )
        early, self._early = self._early, []
        for data in early:
            self._on_update(data)
        self.confirmed = self.text
        if mine is not None and mine != theirs:
            current = self.text
            merged = merge3(theirs, current, mine)
            before = self.doc.get_state()
            apply_diff(self.ytext, diff(current, merged))
            await self.send(self.doc.get_update(before))
        missing = self.doc.get_update(ack["state_vector"])
        if len(missing) > 2:
            await self.send(missing)
        return ack

    async def send(self, update: bytes) -> dict[str, Any]:
        ack = await self._send(update)
        if ack.get("ok") and not ack.get("partial"):
            self.confirmed = self.text
        return ack

    async def _send(self, update: bytes) -> dict[str, Any]:
        pieces = split(update)
        if not pieces:
            ack: dict[str, Any] = await self.call(
                "update", {"doc": self.doc_id, "epoch": self.epoch, "update": update}
            )
            return ack
        for part, piece in pieces:
            ack = await self.call(
                "update", {"doc": self.doc_id, "epoch": self.epoch, "update": piece, "part": part}
            )
            if not ack.get("ok"):
                return ack
        return ack

    def _apply(self, update: bytes) -> None:
        self._applying = True
        try:
            self.doc.apply_update(update)
        finally:
            self._applying = False

    def edit(self, index: int, text: str) -> bytes:
        """A local edit, not sent: its update."""
        self._local.clear()
        self.ytext.insert(index, text)
        return self._local.pop()

    async def insert(self, index: int, text: str) -> dict[str, Any]:
        """A local edit, sent; returns the hub's ack."""
        return await self.send(self.edit(index, text))

    async def append(self, text: str) -> dict[str, Any]:
        return await self.insert(len(self.ytext), text)

    async def delete(self, index: int, length: int) -> dict[str, Any]:
        """Delete `length` characters at `index`, sent; returns the hub's ack."""
        self._local.clear()
        del self.ytext[index : index + length]
        return await self.send(self._local.pop())


async def wait_for(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
