"""Authenticated `GET /api/v2/account` throughput, as a ratio of `/healthz` on the same hub.

Starts a real `cocalc-k8s serve` (embedded PostgreSQL, fresh data directory) on a free
port, signs up, creates an API key, then loads three URLs with wrk (Debian package `wrk`)
or, when wrk is missing, a small aiohttp load generator:

  /healthz                      the baseline: the hub's full middleware stack, no auth, no DB
  /api/v2/account  (cookie)     session lookup in PostgreSQL
  /api/v2/account  (API key)    key lookup in PostgreSQL

Prints requests per second for each and the ratio to the baseline. Machines here are
noisy, so only ratios measured in the same run mean anything.

    python bench/account_rps.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import time

from _hub import running_hub, sign_up


def run_wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    args = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} failed requests\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


async def _aiohttp_load(url: str, headers: dict[str, str], seconds: int, conns: int) -> float:
    import aiohttp

    done = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"{url}: HTTP {response.status}")
                done += 1

    connector = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(conns)))
        return done / (time.monotonic() - start)


def load(url: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    if shutil.which("wrk"):
        return run_wrk(url, headers, seconds, connections)
    return asyncio.run(_aiohttp_load(url, headers, seconds, connections))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with running_hub() as hub:
        base = hub.base
        account = sign_up(base)
        cases = [
            ("/healthz (baseline)", "/healthz", {}),
            ("/api/v2/account, session cookie", "/api/v2/account", {"Cookie": account.cookie}),
            ("/api/v2/account, API key", "/api/v2/account", account.key_headers),
        ]
        load(base + "/healthz", {}, 1, args.connections)  # warm up
        tool = "wrk" if shutil.which("wrk") else "aiohttp client"
        print(f"load: {tool}, {args.connections} connections, {args.seconds} s each")
        baseline = None
        for label, path, headers in cases:
            rps = load(base + path, headers, args.seconds, args.connections)
            baseline = baseline or rps
            print(f"{label:36} {rps:9.0f} req/s   ratio {rps / baseline:5.2f}")


if __name__ == "__main__":
    main()
