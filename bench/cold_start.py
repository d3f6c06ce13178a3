"""Cold start of `cocalc-k8s serve`: from launching the process to `/readyz` answering 200.

  first   a fresh data directory each run: initdb, the first migration, the secret key
  warm    an existing data directory: the embedded PostgreSQL starts on its old cluster
  bare    a bare aiohttp app process answering /healthz: the floor set by Python and
          aiohttp, against which the hub's own start-up cost is a ratio

Each kind runs several times and the medians are printed, with the ratios warm/first and
hub/bare. Machines here are noisy, so compare ratios from the same run.

    python bench/cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMEOUT = 60.0

BARE_APP = """
import sys
from aiohttp import web

async def healthz(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers_200(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def time_to_200(command: list[str], port: int, path: str) -> float:
    """Seconds from launching `command` until GET `path` answers 200; then stop it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCALC_")}
    env.pop("DATABASE_URL", None)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        while not answers_200(port, path):
            if process.poll() is not None:
                raise SystemExit(f"{command} exited {process.returncode}: {process.stderr}")
            if time.perf_counter() - started > TIMEOUT:
                raise SystemExit(f"{command} not ready after {TIMEOUT}s")
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
        if process.returncode != 0:
            raise SystemExit(f"{command} exited {process.returncode} on SIGTERM: {stderr}")


def hub(data_dir: Path) -> float:
    port = free_port()
    command = [sys.executable, "-m", "cocalc_k8s", "serve", "--data-dir", str(data_dir)]
    return time_to_200([*command, "--port", str(port)], port, "/readyz")


def bare() -> float:
    port = free_port()
    return time_to_200([sys.executable, "-c", BARE_APP, str(port)], port, "/healthz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        root = Path(tmp)
        first = [hub(root / f"first-{i}") for i in range(args.runs)]
        warm = [hub(root / "first-0") for _ in range(args.runs)]
        baseline = [bare() for _ in range(args.runs)]
    rows = {"first": first, "warm": warm, "bare": baseline}
    medians = {name: statistics.median(times) for name, times in rows.items()}
    print(f"{'':6} {'median':>8}   runs (s)")
    for name, times in rows.items():
        print(f"{name:6} {medians[name]:7.3f}s   {' '.join(f'{t:.3f}' for t in times)}")
    print(f"warm / first   {medians['warm'] / medians['first']:.2f}")
    print(f"first / bare   {medians['first'] / medians['bare']:.2f}")
    print(f"warm / bare    {medians['warm'] / medians['bare']:.2f}")


if __name__ == "__main__":
    main()
