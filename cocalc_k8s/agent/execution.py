"""``POST /exec``: one ``bash -c`` command with a deadline, run without blocking the loop.

The command runs in its own session (so its own process group) with the whitelisted
environment. On timeout the whole group is killed, background children included. When the
shell itself exits, output is still collected for `PIPE_GRACE` seconds from anything it left
running; processes that outlive that keep running (``nohup server > log &`` is how users
start servers) and their output is read and dropped.
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
    """One output pipe, read to EOF; the first `limit` bytes are kept until `seal()`."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    sealed: bool = False

    async def drain(self, fd: int) -> None:
        """Read to EOF (everything past the limit is read and dropped, so the command never
        blocks on a full pipe), then close the pipe."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            while chunk := await reader.read(1 << 16):
                if self.sealed:
                    continue
                room = self.limit - len(self.data)
                if len(chunk) > room:
                    self.truncated = True
                self.data += chunk[: max(room, 0)]
        finally:
            transport.close()

    def seal(self) -> str:
        self.sealed = True
        return self.data.decode(errors="replace")


class CommandRunner:
    """Runs commands; remembers the running ones to kill their groups when the agent stops."""

    def __init__(self, home: Path, *, output_bytes: int) -> None:
        self.home = home
        self.output_bytes = output_bytes
        self._running: set[asyncio.subprocess.Process] = set()
        self._leftover_readers: set[asyncio.Task[None]] = set()

    async def run(self, command: str, *, time_limit: float, cwd: Path) -> ExecResult:
        # Our own pipes, not asyncio's: its Process.wait() also waits for the pipes to
        # close, which a background job of the command can delay for ever.
        (out_r, out_w), (err_r, err_w) = os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)
        try:
            proc = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                command,
                cwd=cwd,
                env=child_environment(self.home, term="dumb"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
            )
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        self._running.add(proc)
        out, err = _Capture(self.output_bytes), _Capture(self.output_bytes)
        readers = [asyncio.create_task(out.drain(out_r)), asyncio.create_task(err.drain(err_r))]
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), time_limit)
        except TimeoutError:
            timed_out = True
            _kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()
        finally:
            self._running.discard(proc)
        _, still_open = await asyncio.wait(readers, timeout=PIPE_GRACE)
        for task in still_open:  # something the command left running holds the pipe
            self._leftover_readers.add(task)
            task.add_done_callback(self._leftover_readers.discard)
        return {
            "stdout": out.seal(),
            "stderr": err.seal(),
            "exit_code": proc.returncode,
            "timed_out": timed_out,
            "truncated": out.truncated or err.truncated,
        }

    async def stop_all(self) -> None:
        """SIGTERM every running command's group, SIGKILL after `KILL_GRACE` seconds."""
        running = list(self._running)
        for proc in running:
            _kill_group(proc.pid, signal.SIGTERM)
        if running:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in running], timeout=KILL_GRACE)
        for proc in running:
            _kill_group(proc.pid, signal.SIGKILL)
        for task in list(self._leftover_readers):
            task.cancel()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
