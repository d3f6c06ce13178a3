"""The proxy's HTTP/1.1 engine, on asyncio protocols and the llhttp parser (httptools).

Why not aiohttp's client and server: per request they build header dicts, request and
response objects and payload streams on both sides; measured here that costs about as much
as the project's server itself. This engine parses each message once, forwards header
lines it does not need to change as they are, streams bodies as they arrive (re-framing
chunked bodies) and keeps upstream connections alive in a pool. The rest of a large body
of known length, either way, is moved socket to socket in the kernel (`splice`). After a
`101 Switching Protocols` the two sockets are simply joined, so WebSocket frames, pings
and close codes pass through untouched.

Memory stays bounded whatever the sizes: a side that cannot keep up pauses reading from
the other (transport flow control, `_hold` for the client side), and a request body that
arrives while the gate decides is held only up to PENDING_LIMIT.

One request at a time per client connection (browsers do not pipeline): reading from the
client pauses from the end of a request until its response is complete. A request that
begins in the same read as the one before it is answered by closing the connection after
the first response, never by forwarding its bytes: they would reach the project's server
as part of the first request.

A connection waiting for a request head is bounded in time and size (see `limits`), and
a request whose body framing two parsers could read differently is refused with 400
(`messages.body_framing`): what the proxy forwards is always what it parsed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import httptools

from cocalc_k8s.proxy import messages
from cocalc_k8s.proxy.decisions import Allow, Gate, Respond
from cocalc_k8s.proxy.exchange import Exchange, TunnelSink
from cocalc_k8s.proxy.limits import ClientLimits, WaitingRoom, bounded_address
from cocalc_k8s.proxy.messages import RequestHead
from cocalc_k8s.proxy.splice import MIN_BODY, Pipe, Splice, socket_fd
from cocalc_k8s.proxy.upstream import UpstreamConnection, UpstreamPool

log = logging.getLogger(__name__)

SLOT_WAIT = 30.0  # seconds a request waits for one of its project's connection slots
PENDING_LIMIT = 256 * 1024  # request body bytes held while the gate decides; then pause


class _Refuse(Exception):
    """Stop parsing: answer `raw` and close."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw


class _Pipelined(Exception):
    """A request began while the one before it is still being answered."""


class ClientConnection(asyncio.Protocol):
    # Slots: one of these lives as long as each client connection (a thousand WebSockets).
    __slots__ = (
        "_body_left",
        "_busy",
        "_close_after",
        "_holds",
        "_in_head",
        "_keep_alive",
        "_pending_size",
        "_pipe",
        "_splice",
        "_stash",
        "_task",
        "_tunnel_closed",
        "_url",
        "address_key",
        "body_done",
        "client",
        "exchange",
        "gate",
        "head",
        "head_bytes",
        "limits",
        "parser",
        "pending_body",
        "pool",
        "room",
        "scheme",
        "transport",
        "tunnel",
        "waiting_since",
    )

    def __init__(
        self, gate: Gate, pool: UpstreamPool, room: WaitingRoom, *, scheme: str = "http"
    ) -> None:
        self.gate = gate
        self.pool = pool
        self.room = room
        self.limits = room.limits
        self.scheme = scheme
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.head: RequestHead | None = None
        self.exchange: Exchange | None = None
        self.pending_body: list[bytes] = []
        self.body_done = False
        self.tunnel: UpstreamConnection | None = None
        self.client = ""
        self._url = b""
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a request is being answered
        self._keep_alive = True
        self._stash: list[bytes] = []  # the next request, arrived before the reply was done
        self._holds: set[str] = set()  # why reading from the client is paused, if it is
        self._pending_size = 0
        self._body_left = 0  # bytes of a request body of known length still to come
        self._pipe: Pipe | None = None
        self._splice: Splice | None = None  # a request body moving in the kernel
        self._tunnel_closed: asyncio.Future[None] | None = None
        self._in_head = False  # waiting for a request head, or receiving one
        self._close_after = False  # close once the current response is complete
        self.head_bytes = 0
        self.waiting_since = 0.0
        self.address_key: str | None = None

    # -- transport callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if isinstance(peer, tuple) else ""
        self.address_key = bounded_address(self.client, self.limits)
        self._wait_for_head()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            if self.tunnel.transport is not None:
                self.tunnel.transport.write(data)
            return
        if self._busy and self.body_done:
            # A next request before this reply is done (pipelining): keep it for later.
            self._stash.append(data)
            self._hold("next")
            return
        if self._in_head:
            if not self.head_bytes:  # the head timeout runs from its first byte
                self.waiting_since = self.room.now
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
            if self._body_left >= MIN_BODY and self._splice is None:
                self._splice_request()
        except httptools.HttpParserUpgrade as upgrade:
            # The rest of `data` belongs to the upgraded protocol: hold it for the tunnel.
            offset = upgrade.args[0] if upgrade.args else len(data)
            if offset < len(data):
                self.pending_body.append(data[offset:])
            self.body_done = True
        except httptools.HttpParserCallbackError as exc:
            reason = exc.__context__
            if isinstance(reason, _Refuse):
                self._fail(reason.raw)
            elif isinstance(reason, _Pipelined):
                self._close_after = True  # the parser stopped: nothing more is read
                self._hold("pipelined")
            else:
                log.error("proxy parser callback failed", exc_info=reason)
                self._fail(messages.simple_response(500, b"internal error", close=True))
            return
        except httptools.HttpParserError:
            self._fail(messages.simple_response(400, b"malformed HTTP request", close=True))
            return
        if self._in_head and self.head_bytes > self.limits.max_head:
            self._fail(_too_large())

    def abandon(self) -> None:
        """Waited too long for a request head, or made room for another connection (the
        waiting room has let go of it already)."""
        self._in_head = False
        if self.head_bytes:
            self._fail(
                messages.simple_response(408, b"request head not received in time", close=True)
            )
        elif self.transport is not None:
            self.transport.close()

    def _wait_for_head(self) -> None:
        self._in_head = True
        self.head_bytes = 0
        self.room.enter(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._in_head:
            self._in_head = False
            self.room.leave(self)
        if self._splice is not None:
            self._splice.cancel()
            self._splice = None
        if self.tunnel is not None:
            self.tunnel.close()
        if self.exchange is not None:
            self.exchange.client_lost()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    def pause_writing(self) -> None:
        if self.exchange is not None and self.exchange.upstream.transport is not None:
            self.exchange.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.splice is None and exchange.upstream.transport:
            exchange.upstream.transport.resume_reading()

    # -- parser callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._busy:
            raise _Pipelined
        self._url = b""
        self.head = RequestHead(method=b"", target=b"", client=self.client, scheme=self.scheme)
        self.pending_body = []
        self._pending_size = 0
        self.body_done = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.head is not None
        self.head.headers.append((name, value))

    def on_headers_complete(self) -> None:
        head = self.head
        assert head is not None and self.transport is not None
        self._in_head = False
        self.room.leave(self)
        if (
            self.head_bytes > self.limits.max_head
            and _head_size(head, self._url) > self.limits.max_head
        ):
            raise _Refuse(_too_large())  # a large head that came in one read
        try:
            head.chunked, length = messages.body_framing(head.headers)
        except messages.BadFraming as exc:
            raise _Refuse(messages.simple_response(400, str(exc).encode(), close=True)) from None
        head.method = self.parser.get_method()
        head.target = self._url
        head.upgrade = self.parser.should_upgrade()
        self._body_left = length or 0
        # Read now: llhttp resets its flags once the message is parsed.
        self._keep_alive = self.parser.should_keep_alive() and not head.upgrade
        self._busy = True
        if head.upgrade:
            self._hold("upgrade")  # the rest belongs to the tunnel, if there is one
        self._task = asyncio.get_running_loop().create_task(self._handle(head))

    def on_body(self, body: bytes) -> None:
        self._body_left -= len(body)
        if self.exchange is not None and self.exchange.sent_head:
            self.exchange.send_body(body)
            return
        self.pending_body.append(body)
        self._pending_size += len(body)
        if self._pending_size > PENDING_LIMIT:
            self._hold("gate")  # no unbounded buffering while the gate decides

    def on_message_complete(self) -> None:
        self.body_done = True
        if self.exchange is not None and self.exchange.sent_head:
            self.exchange.end_body()

    # -- handling -------------------------------------------------------------------------

    async def _handle(self, head: RequestHead) -> None:
        # After an upgrade request the parser cannot go on: the connection ends with it.
        keep_alive = self._keep_alive
        try:
            decision = await self.gate(head)
        except messages.UnsafeHead:  # a user's value would have split the head
            decision = Respond(messages.error_response(head, 400, "CR, LF or NUL in a header"))
        except Exception:
            log.exception("proxy gate failed")
            decision = Respond(messages.error_response(head, 500, "internal error"))
        if isinstance(decision, Respond):
            self._write(decision.raw)
            self._finish(keep_alive and not decision.close and self.body_done)
            return
        await self._forward(head, decision, keep_alive)

    async def _forward(self, head: RequestHead, allow: Allow, keep_alive: bool) -> None:
        try:
            upstream_head = messages.upstream_request(
                head, allow.route, path=allow.path, extra=allow.extra_headers
            )
        except messages.UnsafeHead:
            self._write(messages.error_response(head, 400, "CR, LF or NUL in a header"))
            self._finish(keep_alive and self.body_done)
            return
        limit = self.pool.limit(allow.route.project_id)
        if not limit.try_take() and not await limit.take(SLOT_WAIT):
            message = "too many requests to this project at once; try again"
            self._write(messages.error_response(head, 503, message))
            self._finish(keep_alive and self.body_done)
            return
        tunnel = False
        try:
            try:
                upstream = await self.pool.acquire(allow.upstream)
            except TimeoutError:
                self._write(
                    messages.error_response(head, 504, "the project's server did not answer")
                )
                self._finish(keep_alive and self.body_done)
                return
            except OSError:
                message = "nothing answers on that port in the project (is the server running?)"
                if allow.on_unreachable is not None:
                    allow.on_unreachable()
                    message = "the server stopped; reload to start it again"
                self._write(messages.error_response(head, 502, message))
                self._finish(keep_alive and self.body_done)
                return
            exchange = Exchange(self, upstream, head, allow)
            self.exchange = exchange
            upstream.sink = exchange
            exchange.start(upstream_head, self.pending_body, self.body_done)
            self.pending_body = []
            self._release("gate")
            try:
                tunnel = await exchange.done
            finally:
                self.exchange = None
                exchange.detach()
                if self._splice is not None:  # answered before the request body was read
                    self._splice.cancel()
                    self._splice = None
                if not self.body_done:  # the server holds half a request: not reusable
                    upstream.reusable = False
        finally:
            limit.release()  # an open tunnel does not hold one of the project's slots
        if tunnel:
            await self._run_tunnel(upstream, allow)
            return
        if upstream.transport is not None:
            upstream.transport.resume_reading()  # a slow client may have paused it
        self.pool.release(upstream)
        self._finish(keep_alive and exchange.reusable_client and self.body_done)

    async def _run_tunnel(self, upstream: UpstreamConnection, allow: Allow) -> None:
        self.tunnel = upstream
        upstream.sink = TunnelSink(self)
        for data in self.pending_body:
            if upstream.transport is not None:
                upstream.transport.write(data)
        self.pending_body = []
        closed = asyncio.get_running_loop().create_future()
        unregister = allow.on_tunnel(lambda: self._close()) if allow.on_tunnel else None
        self._tunnel_closed = closed
        self._release("upgrade")
        try:
            await closed
        finally:
            if unregister is not None:
                unregister()

    def tunnel_ended(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.tunnel is not None:
            self.tunnel.close()
        closed = self._tunnel_closed
        if closed is not None and not closed.done():
            closed.set_result(None)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _writelines(self, data: list[bytes]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(data)

    def _finish(self, keep_alive: bool) -> None:
        """The response is complete: read the next request, or close."""
        self._busy = False
        if self.transport is None or self.transport.is_closing():
            return
        if not keep_alive or self._close_after:
            self.transport.close()
            return
        self._wait_for_head()
        self._release("next")
        if self._stash:
            data, self._stash = b"".join(self._stash), []
            self.data_received(data)

    def _hold(self, reason: str) -> None:
        """Stop reading from the client until every reason given is released."""
        if not self._holds and self.transport is not None:
            self.transport.pause_reading()
        self._holds.add(reason)

    def _release(self, reason: str) -> None:
        if reason in self._holds:
            self._holds.discard(reason)
            if not self._holds and self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def pipe(self) -> Pipe:
        """This connection's pipe for splicing bodies (a new one if the last was left dirty)."""
        if self._pipe is not None and self._pipe.dirty:
            self._pipe.close()
            self._pipe = None
        if self._pipe is None:
            self._pipe = Pipe()
        return self._pipe

    def _splice_request(self) -> None:
        """The rest of a large request body goes to the project's server in the kernel."""
        exchange = self.exchange
        if exchange is None or not exchange.sent_head or self.scheme != "http":
            return
        upstream = exchange.upstream.transport
        source, sink = socket_fd(self.transport), socket_fd(upstream)
        if source is None or sink is None or upstream is None:
            return
        self._hold("splice")
        self._splice = Splice(self.pipe(), source, sink, upstream, self._body_left, self._spliced)

    def _spliced(self, ok: bool) -> None:
        self._splice = None
        self._body_left = 0
        if not ok:  # the client or the project's server went away mid-body
            if self.exchange is not None:
                self.exchange.client_lost()
            if self.transport is not None:
                self.transport.close()
            return
        # The parser still waits for the body it never saw: the next request gets a new one.
        self.parser = httptools.HttpRequestParser(self)
        self.on_message_complete()
        self._release("splice")

    def _fail(self, raw: bytes) -> None:
        self._write(raw)
        if self.transport is not None:
            self.transport.close()


def _too_large() -> bytes:
    return messages.simple_response(431, b"request head too large", close=True)


def _head_size(head: RequestHead, target: bytes) -> int:
    """About the bytes of a head as sent (its request line and header lines)."""
    return len(target) + 16 + sum(len(name) + len(value) + 4 for name, value in head.headers)


async def serve(
    gate: Gate,
    pool: UpstreamPool,
    host: str,
    port: int,
    *,
    ssl: Any = None,
    sockets: list[socket.socket] | None = None,
    limits: ClientLimits | None = None,
) -> list[asyncio.Server]:
    """Listen on host:port, or on `sockets` bound beforehand (one server per socket)."""
    loop = asyncio.get_running_loop()
    scheme = "https" if ssl is not None else "http"
    limits = limits or ClientLimits()
    room = WaitingRoom(limits)  # one for all sockets: the bounds are the listener's
    # A TLS handshake comes before any head: it gets no longer than a head would.
    handshake = limits.head_timeout if ssl is not None else None

    def factory() -> ClientConnection:
        return ClientConnection(gate, pool, room, scheme=scheme)

    if sockets:
        return [
            await loop.create_server(factory, sock=sock, ssl=ssl, ssl_handshake_timeout=handshake)
            for sock in sockets
        ]
    return [
        await loop.create_server(
            factory, host, port, ssl=ssl, reuse_address=True, ssl_handshake_timeout=handshake
        )
    ]
