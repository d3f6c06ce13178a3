"""``POST /exec``: one ``bash -c`` command with a deadline, run without blocking the loop.

The command runs in its own session (so its own process group) with the whitelisted
environment. On timeout the whole group is killed, background children included. When the
shell itself exits, output is still collected for `PIPE_GRACE` seconds from anything it left
running; processes that outlive that keep running (``nohup server > log &`` is how users
start servers) but their output is no longer captured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from cocalc_k8s.agent.environment import child_environment

MAX_TIMEOUT = 3600.0
DEFAULT_TIMEOUT = 30.0
PIPE_GRACE = 1.0
KILL_GRACE = 5.0


class ExecResult(TypedDict):
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    truncated: bool


@dataclass
class _Capture:
    limit: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        """Read to EOF, keeping the first `limit` bytes (the rest is read and dropped so
        the command never blocks on a full pipe)."""
        while chunk := await stream.read(1 << 16):
            room = self.limit - len(self.data)
            if len(chunk) > room:
                self.truncated = True
            self.data += chunk[: max(room, 0)]


class CommandRunner:
    """Runs commands; remembers the running ones to kill their groups when the agent stops."""

    def __init__(self, home: Path, *, output_bytes: int) -> None:
        self.home = home
        self.output_bytes = output_bytes
        self._running: set[asyncio.subprocess.Process] = set()

    async def run(self, command: str, *, time_limit: float, cwd: Path) -> ExecResult:
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            cwd=cwd,
            env=child_environment(self.home, term="dumb"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._running.add(proc)
        out, err = (
            _Capture(self.output_bytes, bytearray()),
            _Capture(self.output_bytes, bytearray()),
        )
        assert proc.stdout is not None and proc.stderr is not None
        readers = asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), time_limit)
        except TimeoutError:
            timed_out = True
            _kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()
        finally:
            self._running.discard(proc)
        try:
            await asyncio.wait_for(asyncio.shield(readers), PIPE_GRACE)
        except TimeoutError:
            readers.cancel()  # something the command left running still holds the pipes
            with contextlib.suppress(asyncio.CancelledError):
                await readers
        return {
            "stdout": out.data.decode(errors="replace"),
            "stderr": err.data.decode(errors="replace"),
            "exit_code": proc.returncode,
            "timed_out": timed_out,
            "truncated": out.truncated or err.truncated,
        }

    async def stop_all(self) -> None:
        """SIGTERM every running command's group, SIGKILL after `KILL_GRACE` seconds."""
        running = list(self._running)
        if not running:
            return
        for proc in running:
            _kill_group(proc.pid, signal.SIGTERM)
        await asyncio.wait([asyncio.create_task(p.wait()) for p in running], timeout=KILL_GRACE)
        for proc in running:
            _kill_group(proc.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
