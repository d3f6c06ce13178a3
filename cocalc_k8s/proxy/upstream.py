"""Keep-alive connections to the servers inside projects, pooled per upstream and limited
per project so one project cannot exhaust the hub.

An upstream is one of two kinds: `TcpUpstream` (host:port, a pod's address) or
`AgentUpstream` (a port on a sandboxed local project's own loopback, whose connected
socket the project's agent hands over; see `cocalc_k8s.backends.agent_connect`). Once
connected both are plain TCP sockets, pooled, kept alive and spliced alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import httptools

from cocalc_k8s.backends.agent_connect import open_port
from cocalc_k8s.backends.base import AgentAddress

CONNECT_TIMEOUT = 5.0
IDLE_KEEP = 128  # idle connections kept per upstream (above the per-project limit)
HEAD_READ = 32 * 1024  # what is read while a response head is awaited
BODY_READ = 256 * 1024  # what is read while a body or a tunnel passes through Python

# One read buffer for every upstream connection: each read is copied out before the
# event loop reads anything else, so none needs a buffer of its own (a thousand open
# WebSockets would otherwise hold a thousand of them).
_BUFFER = memoryview(bytearray(BODY_READ))


@dataclass(frozen=True, slots=True)
class TcpUpstream:
    host: str
    port: int

    @property
    def origin(self) -> str:
        """The origin the server sees itself at (for rewriting its redirects)."""
        return f"http://{self.host}:{self.port}"

    async def open(self, factory: Callable[[], UpstreamConnection]) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(factory, self.host, self.port)
        return protocol


@dataclass(frozen=True, slots=True)
class AgentUpstream:
    connect: str
    """The project agent's connect service (a Unix socket of the hub's)."""
    token: str = field(repr=False)
    port: int

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self, factory: Callable[[], UpstreamConnection]) -> UpstreamConnection:
        sock = await open_port(self.connect, self.token, self.port)
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise
        return protocol


def upstream_for(address: AgentAddress, port: int) -> Upstream:
    """Where port `port` of the project at `address` is reached."""
    if address.connect:
        return AgentUpstream(address.connect, address.token, port)
    return TcpUpstream(address.host, port)


def agent_upstream(address: AgentAddress) -> Upstream:
    """The project's agent itself (its HTTP API), for `/raw/`."""
    if address.unix:
        return UnixUpstream(address.unix)
    return TcpUpstream(address.host, address.port)


@dataclass(frozen=True, slots=True)
class UnixUpstream:
    path: str

    @property
    def origin(self) -> str:
        return "http://127.0.0.1"

    async def open(self, factory: Callable[[], UpstreamConnection]) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_unix_connection(factory, self.path)
        return protocol


Upstream = TcpUpstream | AgentUpstream | UnixUpstream


class UpstreamConnection(asyncio.BufferedProtocol):
    """One connection to a project's server. The proxy that borrows it sets `sink`, the
    object that receives the response (see `protocol.Exchange`); the sink's `read_size`
    says how much to read at once. While a head is awaited that is little: the rest of a
    large body is then left in the socket for `splice` to move without reading it."""

    __slots__ = ("closed", "key", "reusable", "sink", "transport")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.sink: Any = None
        self.closed = False
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        sink = self.sink
        return _BUFFER[: sink.read_size] if sink is not None else _BUFFER[:HEAD_READ]

    def buffer_updated(self, nbytes: int) -> None:
        if self.sink is not None:
            self.sink.upstream_data(bytes(_BUFFER[:nbytes]))
        else:  # bytes while idle: the server is not speaking HTTP/1.1 as we expect
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.sink is not None:
            self.sink.upstream_lost()

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.pause_client()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.resume_client()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Slots:
    """A project's share of the proxy: how many of its requests may be forwarded at once.
    A freed slot goes to the longest waiter. (A semaphore inside `asyncio.timeout` does the
    same at several times the cost, paid by every request.)"""

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_take(self) -> bool:
        if self.free and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self, seconds: float) -> bool:
        """Wait for a slot; False if none came within `seconds`."""
        if self.try_take():
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                await waiter
            return True
        except TimeoutError:
            return waiter.done() and not waiter.cancelled()  # handed over as time ran out
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over as this request was cancelled: pass it on
            raise
        finally:
            if not waiter.done() or waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class UpstreamPool:
    def __init__(self, *, per_project: int = 64) -> None:
        self.per_project = per_project
        self._idle: dict[Hashable, collections.deque[UpstreamConnection]] = {}
        self._limits: dict[Any, Slots] = {}

    def limit(self, project_key: Any) -> Slots:
        slots = self._limits.get(project_key)
        if slots is None:
            slots = self._limits[project_key] = Slots(self.per_project)
        return slots

    async def acquire(self, upstream: Upstream) -> UpstreamConnection:
        """An idle connection to `upstream`, or a new one (TimeoutError, OSError)."""
        idle = self._idle.get(upstream)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        factory: Callable[[], UpstreamConnection] = lambda: UpstreamConnection(upstream)  # noqa: E731
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await upstream.open(factory)

    def release(self, conn: UpstreamConnection) -> None:
        conn.sink = None
        if conn.closed or not conn.reusable:
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, collections.deque())
        if len(idle) >= IDLE_KEEP:
            conn.close()
            return
        idle.append(conn)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def response_parser(sink: Any) -> httptools.HttpResponseParser:
    return httptools.HttpResponseParser(sink)
