"""Start an agent as a child process and learn its port: for tests, benchmarks, and as the
reference for how a launcher hands over the token (on a pipe, never in argv or env).

The hub's local backend has its own launcher (rlimits, logs, process groups); this one is
deliberately small and synchronous.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class AgentProcess:
    process: subprocess.Popen[bytes]
    port: int
    token: str = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL if it has not exited after `timeout`; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_agent(
    home: Path,
    *,
    token: str | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    token_on_fd: bool = False,
    stderr: int | IO[bytes] | None = None,
    timeout: float = 15,
) -> AgentProcess:
    """Run ``python -m cocalc_k8s.agent --home HOME --port 0`` and wait for its port line.

    The token goes as the first line of stdin, or with `token_on_fd` on a separate pipe
    named by ``--token-fd``.
    """
    token = token or secrets.token_urlsafe(32)
    command = [sys.executable, "-m", "cocalc_k8s.agent", "--home", str(home), "--port", "0"]
    pass_fds: tuple[int, ...] = ()
    if token_on_fd:
        read_end, write_end = os.pipe()
        os.write(write_end, token.encode() + b"\n")
        os.close(write_end)
        command += ["--token-fd", str(read_end)]
        pass_fds = (read_end,)
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [*command, *args],
        stdin=subprocess.DEVNULL if token_on_fd else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=dict(os.environ if env is None else env),
        pass_fds=pass_fds,
    )
    for fd in pass_fds:
        os.close(fd)
    if process.stdin is not None:
        process.stdin.write(token.encode() + b"\n")
        process.stdin.close()
    try:
        port = _read_port(process, timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return AgentProcess(process, port, token)


def _read_port(process: subprocess.Popen[bytes], timeout: float) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"the agent printed no port within {timeout} s")
            chunk = os.read(process.stdout.fileno(), 256)
            if not chunk:
                raise RuntimeError(f"the agent exited with {process.wait()} before listening")
            line += chunk
    return int(json.loads(line)["port"])
