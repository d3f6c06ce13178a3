"""A lean Socket.IO v5 client over one aiohttp WebSocket, for load generation only.

python-socketio's AsyncClient spends ~0.3 ms of CPU per message it receives: 200 of them
typing in one benchmark process saturate that process before the server under test, and
the latencies then measure the load generator. This client speaks just what the
benchmarks need (engine.io v4 over WebSocket, one namespace, events with binary data,
acknowledgements, pings) in either Socket.IO encoding (default: JSON text frames and
binary attachments; msgpack: one binary frame per packet, as the web app speaks) at a
small fraction of that cost.

    client = await WireClient.connect(url, namespace="/documents", headers=...,
                                      encoding="msgpack")
    client.on("update", handler)           # handler(data) with bytes put back in place
    ack = await client.call("join", {...})
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import msgpack

Handler = Callable[[Any], None]


def _deconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, bytes):
        attachments.append(data)
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, dict):
        return {k: _deconstruct(v, attachments) for k, v in data.items()}
    if isinstance(data, list):
        return [_deconstruct(v, attachments) for v in data]
    return data


def _reconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, dict):
        if data.get("_placeholder") is True and "num" in data:
            return attachments[data["num"]]
        return {k: _reconstruct(v, attachments) for k, v in data.items()}
    if isinstance(data, list):
        return [_reconstruct(v, attachments) for v in data]
    return data


class WireClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        ns: str,
        encoding: str,
    ) -> None:
        self.session, self.ws, self.ns = session, ws, ns
        self.msgpack = encoding == "msgpack"
        self.handlers: dict[str, Handler] = {}
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self._connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        namespace: str,
        headers: dict[str, str] | None = None,
        encoding: str = "default",
    ) -> WireClient:
        session = aiohttp.ClientSession()
        ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        ws = await session.ws_connect(ws_url, headers=headers or {}, max_msg_size=0)
        opening = await ws.receive_str()
        if not opening.startswith("0"):
            raise ConnectionError(f"not an engine.io handshake: {opening[:80]}")
        client = cls(session, ws, namespace, encoding)
        if client.msgpack:
            await ws.send_bytes(msgpack.packb({"type": 0, "nsp": namespace, "data": None}))
        else:
            await ws.send_str(f"40{namespace},")
        await asyncio.wait_for(client._connected, 10)
        return client

    def on(self, event: str, handler: Handler) -> None:
        self.handlers[event] = handler

    async def call(self, event: str, data: Any) -> Any:
        """Send an event and wait for its acknowledgement (the caller bounds the wait)."""
        ack_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        if self.msgpack:
            packet = {"type": 2, "nsp": self.ns, "data": [event, data], "id": ack_id}
            await self.ws.send_bytes(msgpack.packb(packet))
            try:
                return await future
            finally:
                self._acks.pop(ack_id, None)
        attachments: list[bytes] = []
        body = json.dumps([event, _deconstruct(data, attachments)], separators=(",", ":"))
        if attachments:
            await self.ws.send_str(f"45{len(attachments)}-{self.ns},{ack_id}{body}")
            for attachment in attachments:
                await self.ws.send_bytes(attachment)
        else:
            await self.ws.send_str(f"42{self.ns},{ack_id}{body}")
        try:
            return await future
        finally:
            self._acks.pop(ack_id, None)

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()
        await self.session.close()

    async def _read(self) -> None:
        async for message in self.ws:
            if self.msgpack and message.type == aiohttp.WSMsgType.BINARY:
                self._msgpack_packet(msgpack.unpackb(message.data))
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                continue  # attachments are read by _packet, right after their header
            text: str = message.data
            if text == "2":
                await self.ws.send_str("3")
            elif text.startswith("4"):
                await self._packet(text[1:])

    async def _packet(self, text: str) -> None:
        kind, rest = text[0], text[1:]
        count = 0
        if kind in "56":
            dash = rest.index("-")
            count, rest = int(rest[:dash]), rest[dash + 1 :]
        if rest.startswith(self.ns):
            rest = rest[len(self.ns) + 1 :]  # the namespace and its comma
        start = 0
        while start < len(rest) and rest[start].isdigit():
            start += 1
        ack_id = int(rest[:start]) if start else None
        payload = json.loads(rest[start:]) if rest[start:] else None
        attachments = [await self.ws.receive_bytes() for _ in range(count)]
        if attachments:
            payload = _reconstruct(payload, attachments)
        if kind == "0":
            self._connected.set_result(None)
        elif kind == "4":
            self._connected.set_exception(ConnectionRefusedError(str(payload)))
        elif kind in "25" and payload:
            handler = self.handlers.get(payload[0])
            if handler is not None:
                handler(payload[1] if len(payload) > 1 else None)
        elif kind in "36" and ack_id is not None:
            future = self._acks.get(ack_id)
            if future is not None and not future.done():
                future.set_result(payload[0] if payload else None)

    def _msgpack_packet(self, packet: dict[str, Any]) -> None:
        kind, payload = packet.get("type"), packet.get("data")
        if kind == 0:
            self._connected.set_result(None)
        elif kind == 4:
            self._connected.set_exception(ConnectionRefusedError(str(payload)))
        elif kind == 2 and payload:
            handler = self.handlers.get(payload[0])
            if handler is not None:
                handler(payload[1] if len(payload) > 1 else None)
        elif kind == 3:
            future = self._acks.get(packet.get("id"))  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(payload[0] if payload else None)
