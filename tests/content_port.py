"""The proxy's engine (`proxy.protocol.serve`) on 127.0.0.1 in front of a real aiohttp
server, with a gate that lets everything through: for tests of the engine's own rules
(framing, limits, heads), apart from who may ask."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from cocalc_k8s.proxy import messages
from cocalc_k8s.proxy.decisions import Allow, Decision, Respond
from cocalc_k8s.proxy.limits import ClientLimits
from cocalc_k8s.proxy.messages import RequestHead
from cocalc_k8s.proxy.protocol import serve
from cocalc_k8s.proxy.routing import Route
from cocalc_k8s.proxy.upstream import TcpUpstream, UpstreamPool

PROJECT = uuid.UUID(int=1)


@dataclass
class Upstream:
    """What the server behind the proxy saw: (method, path, body) per request."""

    port: int = 0
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)


@dataclass
class ContentPort:
    port: int
    upstream: Upstream
    pool: UpstreamPool

    async def exchange(self, raw: bytes, *, seconds: float = 10) -> bytes:
        """Send `raw` on a new connection; everything the proxy sends until it closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            await writer.drain()
            async with asyncio.timeout(seconds):
                return await reader.read()
        finally:
            writer.close()


def upstream_app(upstream: Upstream) -> web.Application:
    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        upstream.seen.append((request.method, request.path_qs, body))
        return web.Response(text=f"{request.method} {request.path_qs} {len(body)}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    return app


async def _gate_for(upstream: Upstream, head: RequestHead) -> Decision:
    target = head.target.decode("latin-1")
    if target.startswith("/answer"):  # answered by the gate itself, as a redirect would be
        return Respond(messages.simple_response(200, b"answered"))
    route = Route(PROJECT, "port", upstream.port, None, "", target)
    return Allow(route, TcpUpstream("127.0.0.1", upstream.port), target)


@dataclass
class RawUpstream:
    """A server that answers each request head it reads with `reply`, byte for byte."""

    reply: bytes
    port: int = 0
    heads: list[bytes] = field(default_factory=list)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                self.heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(self.reply)
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def raw_upstream(reply: bytes) -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream(reply)
    server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()


@contextlib.asynccontextmanager
async def content_port(
    limits: ClientLimits | None = None, *, forward_to: int | None = None
) -> AsyncIterator[ContentPort]:
    """The engine in front of an aiohttp server (or of `forward_to`, another port)."""
    upstream = Upstream()
    runner = web.AppRunner(upstream_app(upstream), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    upstream.port = forward_to or server.sockets[0].getsockname()[1]
    pool = UpstreamPool()

    async def gate(head: RequestHead) -> Decision:
        return await _gate_for(upstream, head)

    servers = await serve(gate, pool, "127.0.0.1", 0, limits=limits)
    port = servers[0].sockets[0].getsockname()[1]
    try:
        yield ContentPort(port, upstream, pool)
    finally:
        for listener in servers:
            listener.close()
        pool.close()
        await runner.cleanup()
