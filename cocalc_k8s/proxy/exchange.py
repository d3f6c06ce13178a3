"""One request forwarded to a project's server and its response coming back (`Exchange`),
and what an upstream connection feeds once it has become a WebSocket tunnel
(`TunnelSink`). The client side, which starts them, is `protocol.ClientConnection`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import httptools

from cocalc_k8s.proxy import messages
from cocalc_k8s.proxy.decisions import Allow
from cocalc_k8s.proxy.messages import RequestHead
from cocalc_k8s.proxy.splice import MIN_BODY, Splice, socket_fd
from cocalc_k8s.proxy.upstream import BODY_READ, HEAD_READ, UpstreamConnection

if TYPE_CHECKING:
    from cocalc_k8s.proxy.protocol import ClientConnection


class TunnelSink:
    """After a 101: what the upstream connection reads goes straight to the client."""

    read_size = BODY_READ

    def __init__(self, client: ClientConnection) -> None:
        self.client = client

    def upstream_data(self, data: bytes) -> None:
        self.client._write(data)

    def upstream_lost(self) -> None:
        self.client.tunnel_ended()

    def pause_client(self) -> None:
        self.client._hold("upstream")

    def resume_client(self) -> None:
        self.client._release("upstream")


class _SecondResponse(Exception):
    """The project's server sent more than the one response asked for."""


class Exchange:
    """One request forwarded on one upstream connection, and its response coming back.

    Exactly one response (after any 1xx) is passed on: bytes after it in the same read
    are not forwarded and the connection is not reused, so a server cannot answer the
    next request of the client, or of whoever borrows the connection next, in advance."""

    def __init__(
        self,
        client: ClientConnection,
        upstream: UpstreamConnection,
        head: RequestHead,
        allow: Allow,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.head = head
        self.allow = allow
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.read_size = HEAD_READ  # BODY_READ once a body streams through Python
        self.sent_head = False
        self.parser = httptools.HttpResponseParser(self)
        self.headers: messages.Headers = []
        self.chunked_out = False
        self.no_body = head.method == b"HEAD"
        self.responded = False
        self.reusable_client = True
        self._close_delimited = False
        self._interim = False
        self._out: list[bytes] = []
        self._remaining = 0  # body bytes still to come, once they need no parsing
        self._upstream_keep_alive = False
        self._failure = "the project's server closed the connection"
        self.splice: Splice | None = None  # the response body moving in the kernel

    # -- request side ---------------------------------------------------------------------

    def start(self, raw_head: bytes, body: list[bytes], complete: bool) -> None:
        """Send the request head (`messages.upstream_request`) and the body so far."""
        assert self.upstream.transport is not None
        self.upstream.transport.write(raw_head)
        self.sent_head = True
        for piece in body:
            self.send_body(piece)
        if complete:
            self.end_body()

    def send_body(self, data: bytes) -> None:
        transport = self.upstream.transport
        if transport is None or not data:
            return
        if self.head.chunked:  # re-framed without copying the chunk into a new bytes
            transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            transport.write(data)

    def end_body(self) -> None:
        if self.head.chunked and self.upstream.transport is not None:
            self.upstream.transport.write(b"0\r\n\r\n")

    # -- response side --------------------------------------------------------------------

    def upstream_data(self, data: bytes) -> None:
        if self._remaining:
            self._pass_through(data)
        else:
            # What one read of the upstream produces (head, body, end) goes out in one write.
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                self._flush()
                offset = upgrade.args[0] if upgrade.args else len(data)
                self._upgraded(data[offset:])
            except httptools.HttpParserError as exc:
                if isinstance(exc.__context__, messages.UnsafeHead):
                    self._failure = "the project's server sent a header that cannot be passed on"
                self.upstream.reusable = False
                self.upstream.close()
            self._flush()
        if self._remaining >= MIN_BODY:
            self._splice_response()

    def _splice_response(self) -> None:
        """The rest of a large body of known length goes to the client in the kernel."""
        client = self.client.transport
        upstream = self.upstream.transport
        if self.client.scheme != "http" or client is None or upstream is None:
            return
        source, sink = socket_fd(upstream), socket_fd(client)
        if source is None or sink is None:
            return
        upstream.pause_reading()
        self.splice = Splice(
            self.client.pipe(), source, sink, client, self._remaining, self._spliced
        )
        self._remaining = 0

    def _spliced(self, ok: bool) -> None:
        self.splice = None
        if ok:
            self._complete(self._upstream_keep_alive)
            return
        self.upstream.reusable = False  # half a body: neither connection can be reused
        self.upstream.close()
        self.reusable_client = False
        if self.client.transport is not None:
            self.client.transport.close()
        if not self.done.done():
            self.done.set_result(False)

    def _pass_through(self, data: bytes) -> None:
        """The rest of a body of known length goes straight to the client, unparsed."""
        extra = len(data) > self._remaining
        if extra:  # not ours to forward, and the server is out of step: not reused
            data = data[: self._remaining]
        self._remaining -= len(data)
        self.client._write(data)
        if not self._remaining:
            self._complete(self._upstream_keep_alive and not extra)

    def _emit(self, data: bytes) -> None:
        self._out.append(data)

    def _flush(self) -> None:
        if self._out:
            out = self._out
            self._out = []
            if len(out) == 1:
                self.client._write(out[0])
            elif sum(map(len, out)) < 65536:
                self.client._write(b"".join(out))  # cheaper than a vectored write
            else:
                self.client._writelines(out)

    def on_message_begin(self) -> None:
        if self.done.done():
            raise _SecondResponse

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status == 101:
            return  # the upgrade exception follows
        if 100 <= status < 200:  # an interim response (100 Continue): pass it on, wait
            self._emit(messages.interim_response(status))
            self.headers = []
            self._interim = True
            return
        length: bytes | None = None
        encoding = b""
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length":
                length = value
            elif lower == b"transfer-encoding":
                encoding = value
        has_length = length is not None
        self.no_body = self.no_body or status in (204, 304)
        upstream_chunked = b"chunked" in encoding.lower()
        self.chunked_out = not self.no_body and (upstream_chunked or not has_length)
        self._close_delimited = not self.no_body and not upstream_chunked and not has_length
        upstream_origin = self.allow.upstream.origin
        head = messages.client_response(
            status,
            b"",
            self.headers,
            self.allow.route,
            upstream_origin=upstream_origin,
            chunked=self.chunked_out,
            policy=self.allow.policy,
        )
        self._emit(head)
        self.responded = True
        self.read_size = BODY_READ  # a large body that cannot be spliced goes this way
        self._upstream_keep_alive = self.parser.should_keep_alive()  # valid only now
        if length is not None and not self.chunked_out and not self.no_body:
            with contextlib.suppress(ValueError):
                self._remaining = int(length)
        if self.no_body:
            self._complete(self.parser.should_keep_alive() and self.head.method != b"HEAD")

    def on_body(self, body: bytes) -> None:
        if self.no_body:
            return
        self._remaining = max(0, self._remaining - len(body))
        if self.chunked_out:
            self._out += (b"%x\r\n" % len(body), body, b"\r\n")
        else:
            self._emit(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self.done.done() or self.parser.get_status_code() == 101:
            return  # a 101 is completed by the upgrade that follows
        self._remaining = 0
        if self.chunked_out:
            self._emit(b"0\r\n\r\n")
        self._complete(self.parser.should_keep_alive())

    def _complete(self, reuse_upstream: bool) -> None:
        self.upstream.reusable = reuse_upstream
        if not self.done.done():
            self.done.set_result(False)

    def _upgraded(self, rest: bytes) -> None:
        status = self.parser.get_status_code()
        head = messages.client_response(
            status,
            b"",
            self.headers,
            self.allow.route,
            upstream_origin="",
            chunked=False,
            policy=messages.TUNNEL,
        )
        self.client._write(head + rest)
        self.upstream.reusable = False
        if not self.done.done():
            self.done.set_result(True)

    def detach(self) -> None:
        """Drop the parser, which refers back to this exchange: without the cycle, the
        exchange is freed at once rather than by the garbage collector."""
        del self.parser
        if self.upstream.sink is self:
            self.upstream.sink = None

    def upstream_lost(self) -> None:
        if self.splice is not None:
            self.splice.cancel()
            self.splice = None
        self._flush()
        if self.done.done():
            return
        if self._close_delimited and self.responded:
            self.client._write(b"0\r\n\r\n")
            self._complete(False)
            return
        self.upstream.reusable = False
        if not self.responded:
            self.client._write(messages.error_response(self.head, 502, self._failure))
            self.done.set_result(False)
            return
        self.reusable_client = False  # half a response was sent: the client must reconnect
        if self.client.transport is not None:
            self.client.transport.close()
        self.done.set_result(False)

    def client_lost(self) -> None:
        if self.splice is not None:
            self.splice.cancel()
            self.splice = None
        self.upstream.reusable = False
        self.upstream.close()
        if not self.done.done():
            self.done.set_result(False)

    def pause_client(self) -> None:
        self.client._hold("upstream")

    def resume_client(self) -> None:
        self.client._release("upstream")
