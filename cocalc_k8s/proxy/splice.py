"""Moving a body of known length from one socket to another inside the kernel.

splice(2) through a pipe: the bytes never reach Python (no read into a buffer, no
`bytes` object, no write back), so a large response or upload costs the proxy a few
system calls per pipe-full instead of two copies and several Python calls per read. Flow
control is the pipe itself: while the destination is full, the source is not read.

Only for plain TCP on both sides (TLS encrypts in user space) and only once the
destination transport has written everything it holds (the bytes must not overtake a
message head still in its buffer). The transports stay paused for reading meanwhile;
duplicated descriptors are watched instead, since an event loop refuses a second watcher
on a transport's own descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable

MIN_BODY = 128 * 1024  # smaller bodies are not worth the set-up
PIPE_SIZE = 1 << 20  # asked for; the kernel may give less (see pipe-max-size)
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_ROUNDS = 16  # pipe-fulls moved per readiness callback before other connections get a turn


class Pipe:
    """A pipe kept by a client connection for all the bodies it splices."""

    def __init__(self) -> None:
        self.read, self.write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.dirty = False  # a splice stopped with bytes left in it: not to be reused
        with contextlib.suppress(OSError):  # over the per-user limit: the default size
            fcntl.fcntl(self.write, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.size = fcntl.fcntl(self.write, fcntl.F_GETPIPE_SZ)

    def close(self) -> None:
        os.close(self.read)
        os.close(self.write)


def socket_fd(transport: asyncio.BaseTransport | None) -> int | None:
    """The descriptor of a plain TCP transport, or None (closed, TLS, not a socket)."""
    if transport is None or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


class Splice:
    """Moves exactly `count` bytes from `source` to `sink`, then calls `done(True)`; calls
    `done(False)` if the source ends early or either side fails. Both transports must be
    paused for reading by the caller, and `sink_transport` must not be written meanwhile.
    The pipe is empty again whenever `done` is called with True."""

    def __init__(
        self,
        pipe: Pipe,
        source: int,
        sink: int,
        sink_transport: asyncio.WriteTransport,
        count: int,
        done: Callable[[bool], None],
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.pipe = pipe
        self.source = os.dup(source)
        self.sink = os.dup(sink)
        self.sink_transport = sink_transport
        self.left = count  # bytes still to take from the source
        self.buffered = 0  # bytes in the pipe
        self.done = done
        self.finished = False
        self._writing = False  # waiting for the sink to take more
        self._flushed = False  # the sink transport's own buffer was found empty
        self.loop.add_reader(self.source, self._readable)

    def _readable(self) -> None:
        for _ in range(_ROUNDS):
            room = min(self.left, self.pipe.size - self.buffered)
            got = 0
            if room:
                try:
                    got = os.splice(self.source, self.pipe.write, room, flags=_FLAGS)
                except BlockingIOError:
                    got = -1  # nothing to read now, or the pipe's slots are all taken
                except OSError:
                    self._end(False)
                    return
                if got == 0:
                    self._end(False)  # the source closed before the end of the body
                    return
                if got > 0:
                    self.left -= got
                    self.buffered += got
            if not self._drain() or got < room:
                return  # blocked, finished, or the socket gave all it had: wait for more

    def _drain(self) -> bool:
        """Empty the pipe into the sink; False when it stopped (full, finished or failed)."""
        if not self._flushed:
            if self.sink_transport.get_write_buffer_size():
                self._wait_for_sink()
                return False
            self._flushed = True
        while self.buffered:
            try:
                n = os.splice(self.pipe.read, self.sink, self.buffered, flags=_FLAGS)
            except BlockingIOError:
                self._wait_for_sink()
                return False
            except OSError:
                self._end(False)
                return False
            if n == 0:  # cannot happen with bytes in the pipe; never spin on it
                self._end(False)
                return False
            self.buffered -= n
        if not self.left:
            self._end(True)
            return False
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self.sink)
            self.loop.add_reader(self.source, self._readable)
        return True

    def _writable(self) -> None:
        if self._drain():
            self._readable()

    def _wait_for_sink(self) -> None:
        if not self._writing:
            self._writing = True
            self.loop.remove_reader(self.source)
            self.loop.add_writer(self.sink, self._writable)

    def _end(self, ok: bool) -> None:
        if self.finished:
            return
        self.cancel()
        self.done(ok)

    def cancel(self) -> None:
        """Stop without calling `done` (the exchange ended some other way)."""
        if self.finished:
            return
        self.finished = True
        if self.buffered:
            self.pipe.dirty = True
        if self._writing:
            self.loop.remove_writer(self.sink)
        else:
            self.loop.remove_reader(self.source)
        os.close(self.source)
        os.close(self.sink)
