"""The realtime channel on the wire: Socket.IO in both of its encodings on one server,
and events sent to a room without a task per recipient (the hot path of editing).

Encodings. Socket.IO's default encoding sends an event that carries bytes (every Yjs
update) as a JSON text frame with placeholders, then one binary frame per attachment;
its msgpack encoding (socket.io-msgpack-parser in the browser, `serializer="msgpack"`
in python-socketio) sends every packet as one binary frame. For editing, msgpack halves
the frames and skips the placeholder walks: a bare relay spent 30% less CPU per
delivered keystroke (bench/collab.py). The web app speaks msgpack; any stock Socket.IO
client, which speaks the default encoding, still works. A socket's encoding is that of
its first packet (a text frame: default; a binary frame: msgpack), and everything sent
to it is encoded so; a socket that then switches encoding is disconnected.

Rooms. python-socketio's `emit` to a room encodes the event once, then starts one task
per recipient and packet and waits for them all; each only puts the packet on the
recipient's queue (engine.io's writer task of that socket does the writing), so the
tasks are pure cost. `send_to_room` puts the packets on the queues directly, in order.
It is for single events (a keystroke's update, a cursor move): a long run of events
(the parts of a large update) goes through `emit`, whose await per event lets a
long-polling client collect them a few at a time (python-engineio's client refuses a
polling response of more than 16 packets, `Payload.max_decode_packets`, and drops the
connection).

Writing. python-engineio puts every packet on its socket's queue, for the socket's
writer task to take (with a `wait_for`, a task per packet) and write. `_Socket` writes a
packet itself when the socket is a WebSocket whose writer holds nothing, queued or in
hand (aiohttp writes frames in the order they are sent): at 50 documents this cut the
hub's CPU per delivered keystroke by a fifth (bench/collab.py). Every other packet is
queued as before.

Long-polling POSTs. python-engineio read a POST body with one read of what had arrived
(about 100 KiB); `_EngineServer` gives it the whole body.

This leans on internals: python-socketio's AsyncServer methods `_handle_eio_message`,
`_handle_eio_disconnect`, `_send_packet` and `_engineio_server_class`; python-engineio's
`_async["translate_request"]` and `_trigger_event("connect")` (where a new socket becomes
a `_Socket`), and its AsyncSocket's `send`, `poll`, `_websocket_handler`, `queue`,
`upgraded`/`upgrading` and `last_ping`. Every packet or request passes through them;
tests/realtime/test_encodings.py exercises each in both encodings and transports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import engineio
import msgpack
import socketio
from aiohttp import web
from engineio import async_socket as eio_socket
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from socketio import packet

log = logging.getLogger(__name__)

DEFAULT, MSGPACK = "default", "msgpack"
_PLAIN = {packet.BINARY_EVENT: packet.EVENT, packet.BINARY_ACK: packet.ACK}
_FROM_CLIENTS = (packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK)
# The largest frame `_Socket.send` writes itself: far under the transport's high-water
# mark (64 KiB), so writing it into an empty buffer never waits for the reader.
DIRECT_BYTES = 16 * 1024


def encode_msgpack(kind: int, namespace: str | None, data: Any, ack_id: int | None) -> bytes:
    """A packet as socket.io-msgpack-parser takes it: `data` and `id` only when present
    (it refuses a DISCONNECT that has data, even nil)."""
    body: dict[str, Any] = {"type": _PLAIN.get(kind, kind), "nsp": namespace or "/"}
    if data is not None:
        body["data"] = data
    if ack_id is not None:
        body["id"] = ack_id
    return bytes(msgpack.packb(body))


def decode_msgpack(frame: bytes) -> tuple[int, str, Any, int | None]:
    """(type, namespace, data, ack id) of a client's packet; ValueError if it is none."""
    try:
        body = msgpack.unpackb(frame)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:  # TypeError: a list key
        raise ValueError(f"not msgpack: {exc}") from exc
    if not isinstance(body, dict):
        raise ValueError("not a map")
    kind, namespace, data, ack_id = (body.get(k) for k in ("type", "nsp", "data", "id"))
    if kind not in _FROM_CLIENTS or type(kind) is not int:
        raise ValueError(f"packet type {kind!r}")
    if not isinstance(namespace, str) or (ack_id is not None and type(ack_id) is not int):
        raise ValueError("bad namespace or ack id")
    if kind in (packet.EVENT, packet.ACK) and not isinstance(data, list):
        raise ValueError("an event or ack without a list of arguments")
    if kind == packet.EVENT and not (data and isinstance(data[0], str)):
        raise ValueError("an event without a name")
    return kind, namespace, data, ack_id


class _Event:
    """One event, encoded at most once per encoding. Each recipient gets engine.io
    packets of its own: an engine.io packet caches its first encoding, raw bytes for a
    WebSocket, which a long-polling recipient of the same packet would then get instead
    of base64."""

    __slots__ = ("_data", "_namespace", "_pieces")

    def __init__(self, namespace: str, data: list[Any]) -> None:
        self._namespace, self._data = namespace, data
        self._pieces: dict[str, list[str | bytes]] = {}

    def packets(self, encoding: str) -> list[eio_packet.Packet]:
        pieces = self._pieces.get(encoding)
        if pieces is None:
            if encoding == MSGPACK:
                pieces = [encode_msgpack(packet.EVENT, self._namespace, self._data, None)]
            else:
                encoded = packet.Packet(
                    packet.EVENT, namespace=self._namespace, data=self._data
                ).encode()
                pieces = encoded if isinstance(encoded, list) else [encoded]
            self._pieces[encoding] = pieces
        return [eio_packet.Packet(eio_packet.MESSAGE, piece) for piece in pieces]


class _Manager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's manager, whose emits encode for each recipient's encoding."""

    server: DualServer

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:  # a packet per recipient: _send_packet encodes them
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                               callback=callback, to=to, **kwargs)  # fmt: skip
            return
        if namespace not in self.rooms:
            return
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        tasks = [
            asyncio.create_task(self.server._send_eio_packet(eio_sid, p))
            for eio_sid, p in self.server.packets_for(namespace, to or room, [event, *args], skip)
        ]
        if tasks:
            await asyncio.wait(tasks)


class _Body:
    """A request body read whole, as engine.io reads it (`await read(n)`)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int = -1) -> bytes:
        data, self._data = self._data, b""
        return data


class _Socket(eio_socket.AsyncSocket):  # type: ignore[misc]
    """python-engineio's socket, writing a packet out the moment it is sent when it
    can: on a WebSocket whose writer task holds nothing (queued or in hand) and whose
    connection has nothing waiting to go out, a small frame is written by `send` itself
    (it goes straight to the kernel: nothing waits, so a slow reader holds up no one),
    instead of a queue, a wake of the writer task and its `poll` (whose `wait_for`
    starts a task per packet). Otherwise (long-polling, an upgrade under way, a busy
    writer, a backed-up connection, a large frame) the packet is queued as the library
    does. The writer's `poll` waits with `asyncio.timeout` instead of `wait_for`, and on
    a WebSocket for as long as the socket is open (see `poll`)."""

    _request: web.Request | None = None  # the WebSocket's request, while its handler runs
    _ws: Any = None  # engine.io's WebSocket of this socket, likewise
    _writer_busy = False  # the writer task holds packets it has not written yet

    async def _websocket_handler(self, ws: Any) -> Any:
        self._ws, self._request = ws, ws.environ.get("aiohttp.request")
        try:
            return await super()._websocket_handler(ws)
        finally:
            self._ws = self._request = None

    async def send(self, pkt: eio_packet.Packet) -> None:
        if self.closed:
            raise eio_exceptions.SocketIsClosedError()
        last_ping = self.last_ping
        if last_ping and time.time() - last_ping > self.server.ping_timeout:
            await self.check_ping_timeout()  # closes the socket
            return
        ws, request = self._ws, self._request
        if (
            ws is None
            or request is None
            or not self.upgraded
            or self.upgrading
            or self._writer_busy
            or not self.queue.empty()
        ):
            self.queue.put_nowait(pkt)
            return
        frame = pkt.encode()
        transport = request.transport
        if len(frame) > DIRECT_BYTES or transport is None or transport.get_write_buffer_size() > 0:
            self.queue.put_nowait(pkt)
            return
        try:
            await ws.send(frame)
        except Exception as exc:  # the connection is gone: its reader loop ends the socket
            log.debug("realtime: socket %s: a write failed (%s)", self.sid, exc)

    async def poll(self) -> list[eio_packet.Packet]:
        queue = self.queue
        self._writer_busy = False  # (the writer wrote what it had before asking again)
        wait = self.server.ping_interval + self.server.ping_timeout
        try:
            while True:
                try:
                    async with asyncio.timeout(wait):
                        first = await queue.get()
                    break
                except TimeoutError:
                    # The library's writer gives up after a quiet `wait`, a wait that its
                    # queued pings always broke. Written at once, they leave the queue
                    # quiet on a healthy WebSocket: it stays until the socket closes
                    # (a None queued) or its pongs stop (the ping check closes it).
                    if self._ws is None or self.closed:
                        raise
            queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise eio_exceptions.QueueEmpty() from None
        if first is None:
            return []
        packets = [first]
        while not queue.empty():
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is None:
                queue.put_nowait(None)
                break
            packets.append(pkt)
        self._writer_busy = True
        return packets


class _EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server, given long-polling POST bodies whole: it reads one with
    a single `request.content.read(length)`, which returns only what has arrived (about
    100 KiB), so a larger POST (a pasted text's parts, over polling) failed to decode.
    `request.read()` reads it all, within the app's body cap (413 beyond)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        drivers: dict[str, Any] = getattr(self, "_async")  # noqa: B009 - untyped
        translate = drivers["translate_request"]

        async def translate_whole(request: web.Request) -> dict[str, Any]:
            environ: dict[str, Any] = translate(request)
            if request.method == "POST":
                environ["wsgi.input"] = _Body(await request.read())
            return environ

        self._async = {**drivers, "translate_request": translate_whole}

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":  # the socket was just made: give it the cheaper ways
            socket = self.sockets.get(args[0])
            if type(socket) is eio_socket.AsyncSocket:
                socket.__class__ = _Socket
        return await super()._trigger_event(event, *args, **kwargs)


class DualServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer, speaking to each socket in its own encoding."""

    def __init__(self, **options: Any) -> None:
        super().__init__(client_manager=_Manager(), **options)
        self._encodings: dict[str, str] = {}  # engine.io sid -> its socket's encoding

    def encoding(self, eio_sid: str) -> str:
        return self._encodings.get(eio_sid, DEFAULT)

    def _engineio_server_class(self) -> type[_EngineServer]:
        return _EngineServer

    async def send_to_room(
        self, event: str, data: Any, *, namespace: str, room: str, skip_sid: str | None = None
    ) -> None:
        """`emit(event, data, room=room, skip_sid=skip_sid)` without a task per
        recipient (see the module's docstring: single events only)."""
        if namespace not in self.manager.rooms:
            return
        for eio_sid, p in self.packets_for(namespace, room, [event, data], [skip_sid]):
            await self.eio.send_packet(eio_sid, p)

    def packets_for(
        self, namespace: str, room: Any, data: list[Any], skip: list[Any]
    ) -> Iterator[tuple[str, eio_packet.Packet]]:
        """(engine.io sid, packet) for each participant of `room` not in `skip`: the
        event encoded once per encoding, a packet of its own per recipient."""
        message = _Event(namespace, data)
        for sid, eio_sid in self.manager.get_participants(namespace, room):
            if sid not in skip:
                for p in message.packets(self.encoding(eio_sid)):
                    yield eio_sid, p

    # -- python-socketio's internals, per encoding -------------------------------------

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        encoding = self._encodings.setdefault(
            eio_sid, MSGPACK if isinstance(data, bytes) else DEFAULT
        )
        if encoding == DEFAULT:
            await super()._handle_eio_message(eio_sid, data)
            return
        try:
            if not isinstance(data, bytes):
                raise ValueError("a text frame on a msgpack socket")
            kind, namespace, body, ack_id = decode_msgpack(data)
        except ValueError as exc:
            log.info("realtime: closing socket %s: not a Socket.IO packet (%s)", eio_sid, exc)
            await self.eio.disconnect(eio_sid)
            return
        if kind == packet.CONNECT:
            await self._handle_connect(eio_sid, namespace, body)
        elif kind == packet.DISCONNECT:
            await self._handle_disconnect(eio_sid, namespace, self.reason.CLIENT_DISCONNECT)
        elif kind == packet.EVENT:
            await self._handle_event(eio_sid, namespace, ack_id, body)
        else:
            await self._handle_ack(eio_sid, namespace, ack_id, body)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self._encodings.pop(eio_sid, None)

    async def _send_packet(self, eio_sid: str, pkt: packet.Packet) -> None:
        if self.encoding(eio_sid) == DEFAULT:
            await super()._send_packet(eio_sid, pkt)
        else:
            frame = encode_msgpack(pkt.packet_type, pkt.namespace, pkt.data, pkt.id)
            await self.eio.send(eio_sid, frame)
