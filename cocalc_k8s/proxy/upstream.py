"""Keep-alive connections to the servers inside projects, pooled per (host, port) and
limited per project so one project cannot exhaust the hub."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import httptools

CONNECT_TIMEOUT = 5.0
IDLE_KEEP = 128  # idle connections kept per upstream (above the per-project limit)


class UpstreamConnection(asyncio.Protocol):
    """One connection to a project's server. The proxy that borrows it sets `sink`, the
    object that receives the response (see `protocol.Exchange`)."""

    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.sink: Any = None
        self.closed = False
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.upstream_data(data)
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


class UpstreamPool:
    def __init__(self, *, per_project: int = 64) -> None:
        self.per_project = per_project
        self._idle: dict[tuple[str, int], collections.deque[UpstreamConnection]] = {}
        self._limits: dict[Any, asyncio.Semaphore] = {}

    def limit(self, project_key: Any) -> asyncio.Semaphore:
        semaphore = self._limits.get(project_key)
        if semaphore is None:
            semaphore = self._limits[project_key] = asyncio.Semaphore(self.per_project)
        return semaphore

    async def acquire(self, host: str, port: int) -> UpstreamConnection:
        key = (host, port)
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        factory: Callable[[], UpstreamConnection] = lambda: UpstreamConnection(key)  # noqa: E731
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, protocol = await loop.create_connection(factory, host, port)
        return protocol

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
