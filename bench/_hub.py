"""Shared by the benchmarks: a real `cocalc-k8s serve` on a free port with a fresh data
directory, an account on it, and small timing summaries.

    with running_hub() as hub:
        user = sign_up(hub.base)
        ...

The hub gets SIGTERM when the block ends, whether it ends normally or with an error, and
the data directory is removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Hub:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Account:
    cookie: str  # "name=value", for a Cookie header
    csrf_token: str
    api_key: str

    @property
    def cookie_headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie, "X-CSRF-Token": self.csrf_token}

    @property
    def key_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the hub exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the hub did not become ready in {READY_TIMEOUT:.0f} s")


def stop_hub(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if the hub has not exited after `STOP_TIMEOUT`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"the hub ignored SIGTERM for {STOP_TIMEOUT:.0f} s: killed", file=sys.stderr)
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_hub(
    *args: str, log_level: str = "warning", nofile: int | None = None, uvloop: bool = False
) -> Iterator[Hub]:
    """`cocalc-k8s serve` on 127.0.0.1 with a temporary data directory, until the block ends.

    `nofile`: the hub's open-file soft limit (set in the child before exec; capped by the
    hard limit unless privileged).
    `uvloop`: run the hub's event loop on uvloop (the package must be installed)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cocalc-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        env = {**os.environ, "COCALC_LOG_LEVEL": log_level}
        command = [sys.executable, "-m", "cocalc_k8s"]
        if uvloop:
            prelude = "import sys, uvloop; uvloop.install(); from cocalc_k8s.cli import main"
            command = [sys.executable, "-c", prelude + "; main(sys.argv[1:])"]
        process = subprocess.Popen(
            [*command, "serve", "--data-dir", str(data_dir),
             "--host", "127.0.0.1", "--port", str(port),
             "--ssh-port", "0", *args],  # no SSH server (2222 may be taken); args win
            env=env,
            stdout=subprocess.DEVNULL,
            preexec_fn=None if nofile is None else lambda: _set_nofile(nofile),
        )  # fmt: skip
        try:
            _wait_ready(process, port)
            yield Hub(process, port, data_dir)
        finally:
            stop_hub(process)


def _set_nofile(limit: int) -> None:
    """In the child, before exec: the soft limit `limit`, the hard one raised if allowed."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and limit > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return
        except (ValueError, OSError):  # not privileged: as high as allowed
            limit = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def post_json(url: str, body: dict[str, str], headers: dict[str, str]) -> tuple[dict, str]:
    """The decoded answer and the first Set-Cookie's "name=value" (or "")."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        cookie = response.headers.get("Set-Cookie", "").split(";")[0]
        return json.loads(response.read()), cookie


def sign_up(base: str, email: str = "bench@example.org") -> Account:
    """A new account: its session cookie, CSRF token and an API key."""
    user, cookie = post_json(
        f"{base}/api/v2/auth/sign-up",
        {"email": email, "password": "benchmark password", "name": "Bench"},
        {},
    )
    key, _ = post_json(
        f"{base}/api/v2/api-keys",
        {"name": "bench"},
        {"Cookie": cookie, "X-CSRF-Token": user["csrf_token"]},
    )
    return Account(cookie=cookie, csrf_token=user["csrf_token"], api_key=key["key"])


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of non-empty `samples`."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def median(samples: list[float]) -> float:
    return statistics.median(samples)
