"""Both Socket.IO encodings on one hub (realtime/wire.py): the web app's msgpack and the
default one of stock clients edit the same document, over WebSocket and polling; a
socket that sends what is not a packet of its encoding is closed, and only it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from typing import Any

import aiohttp
import msgpack
import pytest

from cocalc_k8s.realtime import awareness
from cocalc_k8s.realtime.server import REALTIME
from cocalc_k8s.realtime.wire import decode_msgpack, encode_msgpack
from tests.realtime.client import wait_for

NS = "/documents"


async def test_default_and_msgpack_clients_edit_one_document(team: Any) -> None:
    project_id, (alice, bob, carol) = await team(3)
    a = alice.client()  # default encoding, WebSocket
    b = bob.client(encoding="msgpack")  # msgpack, WebSocket
    c = carol.client(encoding="msgpack")  # msgpack, long-polling
    await a.connect()
    await b.connect()
    await c.connect(["polling"])
    for client in (a, b, c):
        ack = await client.join(project_id, "shared.txt")
        assert ack["ok"] and ack["epoch"] == 1 and isinstance(ack["state_vector"], bytes)
    for i in range(10):
        for name, client in (("a", a), ("b", b), ("c", c)):
            ack = await client.append(f"{name}{i} ")
            assert ack["ok"] and isinstance(ack["seq"], int)
    await wait_for(lambda: a.text == b.text == c.text and len(a.text) == 30 * 3)
    for name in "abc":
        for i in range(10):
            assert a.text.count(f"{name}{i} ") == 1

    cursor = awareness.encode([awareness.ClientState(7, 1, {"cursor": 5})])
    await b.call("awareness", {"doc": b.doc_id, "update": cursor})
    for other in (a, c):
        await wait_for(lambda other=other: any(e == "awareness" for e, _ in other.events))
        ((_, message),) = [(e, d) for e, d in other.events if e == "awareness"]
        (state,) = awareness.decode(message["update"])  # bytes in both encodings
        assert state.client_id == 7 and state.state["user"]["account_id"] == bob.user.account_id
    for client in (a, b, c):
        await client.close()


@pytest.mark.parametrize("encoding", ["msgpack", "default"])
async def test_a_large_file_goes_up_and_down_over_polling(team: Any, encoding: str) -> None:
    """Up: 5 parts of up to 256 KiB, each a polling POST larger than what engine.io used
    to read of one (the first ~100 KiB: it failed to decode); down: the first sync in
    parts, over polling (one polling client: closing one waits out a long-poll) and
    WebSocket. test_sync.py opens 4 MB."""
    project_id, (alice, bob) = await team(2)
    big = "".join(f"line {i:07d} of a large file\n" for i in range(40_000))  # ~1.2 MB
    a = alice.client(encoding=encoding)
    await a.connect(["polling"])
    await a.join(project_id, "big.txt")
    ack = await a.append(big)
    assert ack["ok"] and "seq" in ack
    ack = await a.join(project_id, "big.txt", fresh=True)  # everything again
    assert ack["ok"] and ack["update"] is None and a.text == big  # it came in parts
    c = bob.client(encoding=encoding)
    await c.connect(["websocket"])
    ack = await c.join(project_id, "big.txt")
    assert ack["ok"] and ack["update"] is None and c.text == big
    await c.close()
    await a.close()


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_updates_arrive_in_order_written_at_once_or_queued(
    team: Any, transports: list[str]
) -> None:
    """The hub writes a packet to a WebSocket itself when the socket's writer task has
    nothing queued or in hand, and queues it otherwise (realtime/wire.py `_Socket`): a
    receiver, on WebSocket or upgraded from polling, sees every update once, in
    sequence order, a large one's parts together, while the sender keeps 20 updates in
    flight and pastes now and then."""
    project_id, (alice, bob) = await team(2)
    a, b = alice.client(encoding="msgpack"), bob.client(encoding="msgpack")
    await a.connect()
    await b.connect(transports)  # polling first: the first updates arrive during the upgrade
    await a.join(project_id, "order.txt")
    await b.join(project_id, "order.txt")
    seen: list[tuple[int, int]] = []
    deliver = b.sio.handlers[NS]["update"]

    def record(data: dict[str, Any]) -> None:
        seen.append((data["seq"], data.get("part", {}).get("index", 0)))
        deliver(data)

    b.sio.handlers[NS]["update"] = record
    window = asyncio.Semaphore(20)
    paste = "p" * 600_000  # three parts

    async def type_one(i: int) -> None:
        async with window:
            ack = await a.append(paste if i % 50 == 25 else f"k{i} ")
            assert ack["ok"], ack

    await asyncio.gather(*(type_one(i) for i in range(200)))
    await wait_for(lambda: b.text == a.text, within=30)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 200 + 4 * 2
    await a.close()
    await b.close()


async def _raw_socket(
    session: aiohttp.ClientSession, url: str, key: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(
        url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert (await ws.receive_str()).startswith("0")  # engine.io's open packet
    return ws


async def _closed(ws: aiohttp.ClientWebSocketResponse, within: float = 10.0) -> bool:
    """The hub closed the socket: engine.io's close packet ("1") or the WebSocket's."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        message = await ws.receive(timeout=deadline - time.monotonic())
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return True
        if message.type == aiohttp.WSMsgType.TEXT and message.data == "1":
            return True
    return False


CONNECT = msgpack.packb({"type": 0, "nsp": NS})


@pytest.mark.parametrize(
    "frames",
    [
        [b"\xc1"],  # not msgpack
        [msgpack.packb([0, NS])],  # not a map
        [CONNECT, msgpack.packb({"type": 2, "nsp": NS, "data": {"join": 1}})],  # no list
        [CONNECT, msgpack.packb({"type": 2, "nsp": NS, "data": [7]})],  # no event name
        [CONNECT, msgpack.packb({"type": 5, "nsp": NS, "data": ["update"]})],  # binary event
        [CONNECT, msgpack.packb({"type": 3, "nsp": NS, "data": [], "id": "1"})],  # text id
        [CONNECT, msgpack.packb({"type": 2, "data": ["join", {}]})],  # no namespace
        [CONNECT, b"\x81\x91\x01\x02"],  # a map whose key is a list
        [CONNECT, '42/documents,0["join",{}]'],  # switching to the default encoding
    ],
    ids=["garbage", "array", "data", "name", "binary", "ack-id", "nsp", "key", "switch"],
)
async def test_a_socket_that_breaks_its_encoding_is_closed_and_only_it(
    team: Any, frames: list[Any]
) -> None:
    project_id, (alice,) = await team(1)
    good = alice.client(encoding="msgpack")
    await good.connect()
    await good.join(project_id, "still.txt")
    async with aiohttp.ClientSession() as session:
        ws = await _raw_socket(session, alice.url, alice.key)
        for frame in frames:
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        assert await _closed(ws)
    assert (await good.append("on"))["ok"] and good.text == "on"
    await good.close()


async def test_a_msgpack_socket_joins_by_hand_and_gets_plain_packets(team: Any) -> None:
    """The packets the browser's parser (socket.io-msgpack-parser) checks: CONNECT with
    an object, EVENT and ACK with lists, and nothing else in them."""
    project_id, (alice,) = await team(1)
    async with aiohttp.ClientSession() as session:
        ws = await _raw_socket(session, alice.url, alice.key)
        await ws.send_bytes(CONNECT)
        connected = msgpack.unpackb(await ws.receive_bytes(timeout=10))
        assert connected["type"] == 0 and connected["nsp"] == NS and "sid" in connected["data"]
        join = {"project_id": project_id, "path": "raw.txt", "epoch": None, "state_vector": None}
        await ws.send_bytes(msgpack.packb({"type": 2, "nsp": NS, "data": ["join", join], "id": 1}))
        packets = []
        while not any(p["type"] == 3 for p in packets):
            packets.append(msgpack.unpackb(await ws.receive_bytes(timeout=10)))
        (ack,) = [p for p in packets if p["type"] == 3]
        assert ack["id"] == 1 and isinstance(ack["data"], list)
        body = ack["data"][0]
        assert body["ok"] and isinstance(body["state_vector"], bytes)
        for p in packets:
            assert set(p) <= {"type", "nsp", "data", "id"} and isinstance(p["data"], list)
        await ws.close()


class _StalledReader:
    """A WebSocket client by hand on a socket with a 4 KiB receive buffer, which reads
    only when told: once it stops, its connection backs up (asyncio's stream stops
    taking data past its limit, the kernel's buffers fill)."""

    async def open(self, url: str, key: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=4096)
        self.writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Authorization: Bearer {key}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert (await self.frame()).startswith(b"0")  # engine.io's open packet

    def send(self, data: bytes) -> None:
        """A masked binary frame (the mask is zeros: the payload goes as it is)."""
        assert len(data) < 126
        self.writer.write(bytes([0x82, 0x80 | len(data)]) + b"\0\0\0\0" + data)

    opcode = 0  # of the last frame read (8: the server closes the connection)

    async def frame(self) -> bytes:
        first, second = await self.reader.readexactly(2)
        self.opcode = first & 0x0F
        length = second & 0x7F
        if length >= 126:
            size = 2 if length == 126 else 8
            length = int.from_bytes(await self.reader.readexactly(size), "big")
        return await self.reader.readexactly(length)


async def test_a_reader_that_stops_reading_holds_up_no_one(team: Any) -> None:
    """A collaborator whose connection stops taking data (a stalled laptop, or someone
    doing it on purpose) gets nothing more once its connection backs up; the others of
    its document keep getting every keystroke (the hub writes small frames itself only
    to connections with nothing waiting to go out)."""
    project_id, (alice, bob, mallory) = await team(3)
    a, b = alice.client(encoding="msgpack"), bob.client(encoding="msgpack")
    await a.connect()
    await b.connect()
    await a.join(project_id, "stall.txt")
    await b.join(project_id, "stall.txt")
    stalled = _StalledReader()
    await stalled.open(mallory.url, mallory.key)
    stalled.send(CONNECT)
    await stalled.frame()
    join = {"project_id": project_id, "path": "stall.txt", "epoch": None, "state_vector": None}
    stalled.send(msgpack.packb({"type": 2, "nsp": NS, "data": ["join", join], "id": 1}))
    while msgpack.unpackb(await stalled.frame()).get("type") != 3:
        pass  # joined; from here on it reads nothing
    for i in range(24):  # 6 MB for mallory (more than the kernel buffers), 0 kept
        assert (await asyncio.wait_for(a.append(f"{i:x}" * 250_000), 10))["ok"]
        assert (await asyncio.wait_for(a.delete(0, len(a.text)), 10))["ok"]
    for i in range(100):  # a keystroke each, mallory's connection full
        assert (await asyncio.wait_for(a.append(f"k{i}"), 10))["ok"]
    await wait_for(lambda: b.text == a.text, within=10)
    stalled.writer.close()
    await a.close()
    await b.close()


def test_msgpack_packets_carry_data_and_id_only_when_present() -> None:
    assert msgpack.unpackb(encode_msgpack(1, NS, None, None)) == {"type": 1, "nsp": NS}
    assert msgpack.unpackb(encode_msgpack(5, NS, ["u", b"\x01"], None)) == {
        "type": 2, "nsp": NS, "data": ["u", b"\x01"],
    }  # fmt: skip
    assert msgpack.unpackb(encode_msgpack(6, None, [{}], 3)) == {
        "type": 3, "nsp": "/", "data": [{}], "id": 3,
    }  # fmt: skip
    assert decode_msgpack(encode_msgpack(2, NS, ["update", {"u": b"1"}], 9)) == (
        2, NS, ["update", {"u": b"1"}], 9,
    )  # fmt: skip
    with pytest.raises(ValueError):
        decode_msgpack(msgpack.packb({"type": True, "nsp": NS}))  # a bool is no type


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_a_websocket_stays_open_while_nothing_is_queued_for_it(
    team: Any, transports: list[str]
) -> None:
    """Pings written at once leave engine.io's queue empty; its writer task used to give
    up after ping_interval + ping_timeout (45 s by default) of an empty queue and close a
    healthy connection. With a 1 s interval, the sockets must outlive that twice over,
    and edit still; one whose pongs stop is closed."""
    project_id, (alice, bob) = await team(2)
    eio = alice.user.client.app[REALTIME].sio.eio
    eio.ping_interval, eio.ping_timeout = 1.0, 1.5  # (the handshake tells the clients)
    a, b = alice.client(encoding="msgpack"), bob.client()
    await a.connect(transports)
    await b.connect(transports)
    await a.join(project_id, "quiet.txt")
    await b.join(project_id, "quiet.txt")
    sids = {a.sio.get_sid(NS), b.sio.get_sid(NS)}
    until = time.monotonic() + 2 * (eio.ping_interval + eio.ping_timeout)
    while time.monotonic() < until:  # the period observed, failing at the first drop
        assert a.sio.connected and b.sio.connected
        await asyncio.sleep(0.05)
    assert {a.sio.get_sid(NS), b.sio.get_sid(NS)} == sids
    assert (await a.append("still here"))["ok"]
    await wait_for(lambda: b.text == "still here")
    await b.close()
    await a.close()

    silent = _StalledReader()  # answers no ping: closed within the ping timeout
    await silent.open(alice.url, alice.key)

    async def read_until_closed() -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while silent.opcode != 8:  # a close frame (or the connection's end)
                await silent.frame()

    await asyncio.wait_for(read_until_closed(), 10)
