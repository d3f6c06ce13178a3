"""One process of a streamed session (an SSH shell or command): its stdin, stdout and
stderr as streams, on a pty or on pipes, and its exit status.

On pipes, stdout and stderr stay apart; on a pty both are the terminal (stdout). The
process runs in a session of its own (so its own process group; with a pty, that pty is
its controlling terminal). Its exit is seen even when a background job keeps the output
open: the output is read on for `PIPE_GRACE` seconds after the exit, then dropped, as
`execution.CommandRunner` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import pty
import signal
import struct
import termios
from dataclasses import dataclass
from pathlib import Path

from cocalc_k8s.agent.environment import child_environment, user_shell

PIPE_GRACE = 1.0
READ_SIZE = 1 << 16
KILL_GRACE = 2.0


@dataclass(frozen=True, slots=True)
class PtyRequest:
    term: str
    rows: int
    cols: int


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_terminal() -> None:  # runs in the child, after setsid (start_new_session)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _ReaderProtocol(asyncio.StreamReaderProtocol):
    """A pty's master reads EIO once its last process has gone: that is its end of file.
    (As an error it would be raised by the reader's next read before the output still
    buffered in it: under load, all of a short command's output was lost.)"""

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
        super().connection_lost(exc)


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_SIZE)
    await loop.connect_read_pipe(lambda: _ReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    return reader


async def _writer(fd: int) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", buffering=0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


class SessionProcess:
    """Start with `start`; read `stdout`/`stderr` (None with a pty) to EOF, write `stdin`,
    `wait()` for the exit status (negative: killed by that signal)."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self._master: int | None = None

    @classmethod
    async def start(
        cls, home: Path, command: str | None, pty_request: PtyRequest | None
    ) -> SessionProcess:
        """`command` through the user's shell (``-c``), or a login shell when None."""
        self = cls()
        shell = user_shell()
        argv = [shell, "-l"] if command is None else [shell, "-c", command]
        term = pty_request.term if pty_request else "dumb"
        env = child_environment(home, term=term)
        if pty_request is not None:
            master, slave = pty.openpty()
            _set_size(master, pty_request.rows, pty_request.cols)
            os.set_inheritable(slave, False)
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=home,
                    env=env,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    start_new_session=True,
                    preexec_fn=_take_terminal,
                )
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            self._master = master
            self.stdout = await _reader(os.dup(master))
            self.stdin = await _writer(os.dup(master))
            return self
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = (os.pipe2(os.O_CLOEXEC) for _ in range(3))
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=home,
                env=env,
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
            )
        except BaseException:
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self.stdin = await _writer(in_w)
        self.stdout = await _reader(out_r)
        self.stderr = await _reader(err_r)
        return self

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    def close_stdin(self) -> None:
        """EOF on the process's stdin (with a pty: the terminal's EOF character)."""
        if self.stdin is None:
            return
        if self._master is not None:
            self.stdin.write(b"\x04")
            return
        self.stdin.close()
        self.stdin = None

    def resize(self, rows: int, cols: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                _set_size(self._master, rows, cols)

    def signal(self, sig: signal.Signals) -> None:
        """`sig` to the foreground job of the pty, or to the command's process group."""
        group = self.pid
        if self._master is not None:
            with contextlib.suppress(OSError):
                group = os.tcgetpgrp(self._master)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)

    def kill(self) -> None:
        """End the session: SIGHUP and SIGTERM to its group, SIGKILL after `KILL_GRACE`."""
        if self.proc is None:
            return
        for sig in (signal.SIGHUP, signal.SIGCONT, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
        asyncio.get_running_loop().call_later(KILL_GRACE, _kill_group, self.pid)

    def close(self) -> None:
        if self.stdin is not None:
            self.stdin.close()
            self.stdin = None
        if self._master is not None:
            os.close(self._master)
            self._master = None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
