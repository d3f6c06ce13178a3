"""Shared terminals: one pty per name, shared by every client that joins it.

A `Terminal` owns a login shell on a pty (ptyprocess). Its output is read with
``loop.add_reader`` on the non-blocking master, kept in a bounded scrollback and put on
every client's queue; the shell's exit is noticed through a pidfd, so it is seen even when
a background job keeps the pty open. A client is a queue of outgoing items (output bytes,
or the final exit message) drained by its WebSocket handler; a client that falls more than
`MAX_PENDING` bytes behind is dropped (it can join again and gets the scrollback).

Joining is atomic on the event loop: the scrollback snapshot and the registration of the
new client happen with no await in between, so no output is lost or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptyprocess import PtyProcess

from cocalc_k8s.agent.environment import child_environment, user_shell
from cocalc_k8s.core.errors import BadRequest

NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_PENDING = 4 << 20
MAX_INPUT_BACKLOG = 1 << 20
KILL_GRACE = 2.0
READ_SIZE = 1 << 16

ExitMessage = dict[str, Any]
Item = bytes | ExitMessage | None  # None: the client must close


def check_name(name: str) -> str:
    if not NAME.fullmatch(name) or name in (".", ".."):
        raise BadRequest("terminal names are 1 to 64 letters, digits, '.', '_' or '-'")
    return name


@dataclass(eq=False)
class Client:
    queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)
    pending: int = 0

    def put(self, item: Item) -> None:
        if isinstance(item, bytes):
            self.pending += len(item)
        self.queue.put_nowait(item)

    async def get(self) -> Item:
        item = await self.queue.get()
        if isinstance(item, bytes):
            self.pending -= len(item)
        return item


class Terminal:
    """A shell on a pty, alive until it exits or is killed; clients come and go."""

    def __init__(
        self, name: str, home: Path, *, scrollback: int, on_exit: Callable[[Terminal], None]
    ) -> None:
        self.name = name
        self.created = time.time()
        self.exit_code: int | None = None
        self.exited = asyncio.Event()
        self._scrollback_limit = scrollback
        self._scrollback = bytearray()
        self._clients: set[Client] = set()
        self._input = bytearray()
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self._kill_timer: asyncio.TimerHandle | None = None
        self._proc = PtyProcess.spawn(
            [user_shell(), "-l"],
            cwd=str(home),
            env=child_environment(home, term="xterm-256color"),
            dimensions=(24, 80),
        )
        self.pid: int = self._proc.pid
        self._fd: int = self._proc.fd
        os.set_blocking(self._fd, False)
        self._pidfd = os.pidfd_open(self.pid)
        self._loop.add_reader(self._fd, self._read)
        self._loop.add_reader(self._pidfd, self._shell_exited)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def join(self) -> Client:
        client = Client()
        if self._scrollback:
            client.put(bytes(self._scrollback))
        self._clients.add(client)
        return client

    def leave(self, client: Client) -> None:
        self._clients.discard(client)

    def write(self, data: bytes) -> None:
        """Send input to the shell; what the pty cannot take yet waits for it."""
        if self.exit_code is not None:
            return
        if len(self._input) + len(data) > MAX_INPUT_BACKLOG:
            return  # the shell is not reading: drop rather than grow without bound
        was_empty = not self._input
        self._input += data
        if was_empty:
            self._flush_input()

    def resize(self, rows: int, cols: int) -> None:
        if self.exit_code is None:
            self._proc.setwinsize(rows, cols)

    def kill(self) -> None:
        """SIGHUP (then SIGTERM, and SIGKILL after `KILL_GRACE`) to the shell's session:
        the shell and every job it started."""
        if self.exit_code is not None or self._kill_timer is not None:
            return
        for sig in (signal.SIGHUP, signal.SIGCONT, signal.SIGTERM):
            signal_session(self.pid, sig)
        self._kill_timer = self._loop.call_later(
            KILL_GRACE, signal_session, self.pid, signal.SIGKILL
        )

    # -- event loop callbacks ---------------------------------------------------------

    def _read(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: no process has the pty open any more
            data = b""
        if not data:
            self._loop.remove_reader(self._fd)
            return
        self._broadcast(data)

    def _broadcast(self, data: bytes) -> None:
        self._scrollback += data
        if len(self._scrollback) > self._scrollback_limit:
            del self._scrollback[: len(self._scrollback) - self._scrollback_limit]
        for client in list(self._clients):
            if client.pending > MAX_PENDING:
                self._clients.discard(client)
                client.put(None)
            else:
                client.put(data)

    def _flush_input(self) -> None:
        try:
            written = os.write(self._fd, self._input)
        except BlockingIOError:
            written = 0
        except OSError:
            self._input.clear()
            written = 0
        del self._input[:written]
        if self._input:
            self._loop.add_writer(self._fd, self._flush_input)
        else:
            self._loop.remove_writer(self._fd)

    def _shell_exited(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        _, status = os.waitpid(self.pid, 0)
        self._proc.terminated = True  # reaped here; keep ptyprocess from waiting again
        self.exit_code = os.waitstatus_to_exitcode(status)
        if self.exit_code < 0:
            self.exit_code = 128 - self.exit_code  # as a shell reports a signal
        with contextlib.suppress(OSError):
            while data := os.read(self._fd, READ_SIZE):  # what the shell wrote last
                self._broadcast(data)
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        signal_session(self.pid, signal.SIGHUP)  # jobs it left behind
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._proc.fileobj.close()
        for client in self._clients:
            client.put({"type": "exit", "code": self.exit_code})
            client.put(None)
        self._clients.clear()
        self.exited.set()
        self._on_exit(self)


class TerminalRegistry:
    """The project's terminals by name."""

    def __init__(self, home: Path, *, scrollback: int) -> None:
        self.home = home
        self.scrollback = scrollback
        self._terminals: dict[str, Terminal] = {}

    def get(self, name: str) -> Terminal | None:
        return self._terminals.get(check_name(name))

    def open(self, name: str) -> Terminal:
        """The terminal called `name`, started if it is not running."""
        terminal = self._terminals.get(check_name(name))
        if terminal is None:
            terminal = Terminal(name, self.home, scrollback=self.scrollback, on_exit=self._gone)
            self._terminals[name] = terminal
        return terminal

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "pid": t.pid, "clients": t.clients, "created": t.created}
            for t in sorted(self._terminals.values(), key=lambda t: t.name)
        ]

    async def kill(self, terminal: Terminal, *, wait: float = KILL_GRACE + 1) -> None:
        terminal.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(terminal.exited.wait(), wait)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.kill(t) for t in list(self._terminals.values())))

    def _gone(self, terminal: Terminal) -> None:
        if self._terminals.get(terminal.name) is terminal:
            del self._terminals[terminal.name]


def signal_session(sid: int, sig: signal.Signals) -> None:
    """Signal every process of session `sid` (a shell puts each job in a process group of
    its own, so signalling the shell's group alone would miss them)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getsid(int(entry)) == sid:
                    os.kill(int(entry), sig)
