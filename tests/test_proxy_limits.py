"""The content port's limits on clients that have not sent a request head: its size, the
time it may take, idle keep-alive connections, and how many may wait at once."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
import pytest

from cocalc_k8s.proxy.limits import ClientLimits, WaitingRoom, bounded_address
from tests.content_port import ContentPort, content_port

pytestmark = pytest.mark.timeout(60)

PARTIAL = b"GET /slow HTTP/1.1\r\nHost: x\r\n"  # a head that is never finished


async def _closed(reader: asyncio.StreamReader, *, seconds: float = 10) -> bytes:
    """Everything until the proxy closes the connection (within `seconds`)."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def _get(port: ContentPort, path: str = "/ok") -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port.port}{path}") as resp,
    ):
        assert resp.status == 200
        return await resp.text()


async def test_a_head_larger_than_the_limit_is_431() -> None:
    async with content_port(ClientLimits(max_head=4096)) as port:
        fits = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 3000
        answer = await port.exchange(fits + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        # In one write, and as a head that keeps coming without end.
        answer = await port.exchange(b"GET /b HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer
        # A head that keeps coming, a piece at a time: refused once it is one byte too long
        # (and no more is sent, so the answer is not lost to a reset).
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        head = b"GET /c HTTP/1.1\r\nX-Big: " + b"a" * 4096
        for start in range(0, 4097, 1000):
            writer.write(head[start : min(start + 1000, 4097)])
            await writer.drain()
        answer = await _closed(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 "), answer
        # A long request line counts too.
        answer = await port.exchange(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer
        assert [path for _, path, _ in port.upstream.seen] == ["/a"]


async def test_a_slow_head_is_408_and_an_idle_connection_is_closed() -> None:
    limits = ClientLimits(head_timeout=0.3, idle_timeout=0.5)
    async with content_port(limits) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        writer.write(PARTIAL)
        answer = await _closed(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer

        # A keep-alive connection: served, then closed once it has been idle.
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        writer.write(b"GET /kept HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(10):
            answer = await reader.readuntil(b"GET /kept 0")
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert await _closed(reader) == b""  # quietly: nothing had been asked
        writer.close()
        # A connection that never sends anything is closed the same way.
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        assert await _closed(reader) == b""
        writer.close()


async def test_a_connection_in_use_is_not_timed_out() -> None:
    """The idle timeout counts from the end of the last response, not from the start."""
    limits = ClientLimits(head_timeout=1.0, idle_timeout=1.0)
    async with content_port(limits) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        for _ in range(15):  # 15 pauses of a tenth of the timeout: longer than it in all
            writer.write(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(10):
                await reader.readuntil(b"GET /again 0")
            await asyncio.sleep(0.1)  # a client's pause between requests, not a wait
        writer.close()
        assert len(port.upstream.seen) == 15


async def test_a_slow_loris_of_500_connections_does_not_stop_a_request() -> None:
    limits = ClientLimits(max_waiting=100, head_timeout=60, idle_timeout=60)
    async with content_port(limits) as port:
        slow = []
        for _ in range(500):
            reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
            writer.write(PARTIAL)
            with contextlib.suppress(ConnectionError):  # pushed out already
                await writer.drain()
            slow.append((reader, writer))
        # Served at once, although 500 connections hold half a head each.
        async with asyncio.timeout(10):
            assert await _get(port) == "GET /ok 0"
        # The flood made room for itself by pushing out its own oldest: at most 100 wait.
        for reader, _ in slow[:400]:
            with contextlib.suppress(ConnectionError):
                answer = await _closed(reader)
                assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
        # The newest still wait, and are served when their heads are complete.
        reader, writer = slow[-1]
        writer.write(b"Connection: close\r\n\r\n")
        assert (await _closed(reader)).endswith(b"GET /slow 0")
        for _, writer in slow:
            writer.close()
        assert [path for _, path, _ in port.upstream.seen] == ["/ok", "/slow"]


async def test_one_bounded_address_cannot_take_every_place() -> None:
    """With per-address bounds, the longest waiting of that address goes first; the
    others' connections keep their places."""
    room = WaitingRoom(ClientLimits(max_waiting=10, max_waiting_per_address=3))
    others = [Waiting("192.0.2.1") for _ in range(4)]
    for waiter in others:
        room.enter(waiter)
    flood = [Waiting("198.51.100.7") for _ in range(20)]
    for waiter in flood:
        room.enter(waiter)
    assert not any(waiter.abandoned for waiter in others[1:])  # 4 > 3: the first went
    assert others[0].abandoned
    assert [waiter.abandoned for waiter in flood] == [True] * 17 + [False] * 3
    assert len(room) == 6
    # Unbounded addresses (loopback) count only against the total.
    local = [Waiting(None) for _ in range(12)]
    for waiter in local:
        room.enter(waiter)
    assert len(room) == 10
    for waiter in [*others, *flood, *local]:
        room.leave(waiter)
    assert len(room) == 0


def test_which_addresses_are_bounded() -> None:
    limits = ClientLimits()
    assert bounded_address("203.0.113.5", limits) == "203.0.113.5"
    assert bounded_address("2001:db8::1", limits) == "2001:db8::1"
    # Behind kubectl port-forward or on the one-command run every client is loopback.
    for shared in ("127.0.0.1", "127.0.0.2", "::1", "", "not an address"):
        assert bounded_address(shared, limits) is None
    assert bounded_address("203.0.113.5", ClientLimits(max_waiting_per_address=0)) is None


@dataclass(eq=False)
class Waiting:
    """A connection as the waiting room sees it."""

    address_key: str | None
    head_bytes: int = 0
    waiting_since: float = 0.0
    abandoned: bool = False

    def abandon(self) -> None:
        self.abandoned = True
