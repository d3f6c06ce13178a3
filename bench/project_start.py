"""Local project start to `running`, and stop to `stopped`, through the hub's API.

Starts a real `cocalc-k8s serve` (fresh data directory, local backend) on a free port,
signs up, then does N start/stop cycles: even cycles start a fresh project (first start:
the home directory is created), odd cycles start the previous project again after its
stop. Each transition is timed as a client sees it: the progress stream
(`GET …/progress?wait=1`, Server-Sent Events) is opened first and its first event read,
then `POST …/start` (or `/stop`) is sent, and the clock stops at the event `running` (or
`stopped`).

The baseline is the floor the hub's local backend cannot beat: launching the same agent
process directly with `cocalc_k8s.agent.launch.start_agent` until its `/health` answers
200 (and `AgentProcess.stop` for stop), N times in the same run. Prints p50/p95/max of
each and the ratios hub/baseline. Machines here are noisy: only ratios from the same run
mean much.

With `--without-sandbox` a second hub runs next to the first, one that finds no
bubblewrap (a PATH without `bwrap`, `--trusted-users`), and the two take turns cycle by
cycle: the sandbox's cost is the difference of the p50s. Where the interpreter lives under
a private directory (pyenv in /root), unsandboxed projects cannot run it: run the script in
a mount namespace where it is traversable, e.g. (as root)

    unshare --mount --propagation private sh -c 'mount --bind /root/.pyenv /mnt &&
      mount -t tmpfs -o mode=0755 tmpfs /root && mkdir /root/.pyenv &&
      mount --bind /mnt /root/.pyenv && exec .venv/bin/python bench/project_start.py
      --without-sandbox'

    python bench/project_start.py [--count 20] [--without-sandbox]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from _hub import free_port, median, percentile, running_hub, sign_up

from cocalc_k8s.agent.launch import start_agent

SETTLE_TIMEOUT = 60.0


async def transition(
    session: aiohttp.ClientSession, base: str, project_id: str, action: str, target: str
) -> float:
    """Seconds from `POST …/{action}` to the progress event with state `target`."""
    url = f"{base}/api/v2/projects/{project_id}"
    async with asyncio.timeout(SETTLE_TIMEOUT):
        async with session.get(f"{url}/progress?wait=1") as stream:
            if stream.status != 200:
                raise SystemExit(f"progress: HTTP {stream.status}: {await stream.text()}")
            events = _events(stream)
            first = await anext(events)
            started = time.perf_counter()
            # The answer to the POST may come after the event: read both at once.
            post = asyncio.create_task(session.post(f"{url}/{action}"))
            try:
                elapsed = None
                async for event in events:
                    if event["state"] == target and elapsed is None:
                        elapsed = time.perf_counter() - started
                    if event["state"] == "failed":
                        raise SystemExit(f"{action} of {project_id} failed: {event}")
                    # Read on to the end (the event "done"), which the hub may send after
                    # the state: a later stream would otherwise receive it and end at once.
                if elapsed is None:
                    raise SystemExit(f"{action}: the stream ended at {first} without {target}")
            finally:
                response = await post
                response.release()
            if response.status != 202:
                raise SystemExit(f"{action}: HTTP {response.status}")
            return elapsed


async def _events(stream: aiohttp.ClientResponse):  # type: ignore[no-untyped-def]
    async for line in stream.content:
        if line.startswith(b"data: "):
            yield json.loads(line[6:])


async def hub_cycles(
    hubs: list[tuple[str, dict[str, str]]], count: int
) -> list[dict[str, list[float]]]:
    """`count` start/stop cycles on each hub (base URL, headers), taking turns: cycle i runs
    on every hub before cycle i+1 on any, so that a change of the machine's load falls on
    all of them alike."""
    times: list[dict[str, list[float]]] = [
        {"start fresh": [], "start again": [], "stop": []} for _ in hubs
    ]
    sessions = [aiohttp.ClientSession(headers=headers) for _, headers in hubs]
    project_ids = [""] * len(hubs)
    try:
        for i in range(count):
            for n, ((base, _), session) in enumerate(zip(hubs, sessions, strict=True)):
                if i % 2 == 0:
                    async with session.post(
                        f"{base}/api/v2/projects", json={"title": f"bench {i}"}
                    ) as response:
                        if response.status != 201:
                            raise SystemExit(f"create: HTTP {response.status}")
                        project_ids[n] = (await response.json())["project_id"]
                kind = "start fresh" if i % 2 == 0 else "start again"
                started = await transition(session, base, project_ids[n], "start", "running")
                times[n][kind].append(started)
                stopped = await transition(session, base, project_ids[n], "stop", "stopped")
                times[n]["stop"].append(stopped)
    finally:
        for session in sessions:
            await session.close()
    return times


def bare_agent_cycles(count: int) -> tuple[list[float], list[float]]:
    """Seconds to launch an agent until /health answers, and to stop it."""
    starts, stops = [], []
    root = Path(tempfile.mkdtemp(prefix="cocalc-bench-agents-"))
    try:
        for i in range(count):
            home = root / str(i)
            started = time.perf_counter()
            home.mkdir(mode=0o700)
            agent = start_agent(home, stderr=subprocess.DEVNULL)
            try:
                request = urllib.request.Request(agent.url + "/health", headers=agent.headers)
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
                starts.append(time.perf_counter() - started)
            finally:
                stopping = time.perf_counter()
                agent.stop()
                stops.append(time.perf_counter() - stopping)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return starts, stops


@contextlib.contextmanager
def path_without_bwrap() -> Iterator[None]:
    """PATH as it is, but with every program linked from a directory that lacks bwrap."""
    saved = os.environ["PATH"]
    with tempfile.TemporaryDirectory(prefix="cocalc-bench-nobwrap-") as tmp:
        for folder in reversed(saved.split(os.pathsep)):
            with contextlib.suppress(OSError):
                for name in os.listdir(folder):
                    link = Path(tmp) / name
                    if name != "bwrap" and not link.exists():
                        link.symlink_to(Path(folder) / name)
        os.environ["PATH"] = tmp
        try:
            yield
        finally:
            os.environ["PATH"] = saved


def line(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{label:28} n={len(ms):3}  p50 {median(ms):7.1f} ms  p95 {percentile(ms, 0.95):7.1f} ms"
        f"  max {max(ms):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="start/stop cycles (each side)")
    parser.add_argument(
        "--without-sandbox", action="store_true", help="also time a hub that has no bubblewrap"
    )
    args = parser.parse_args()
    bare_agent_cycles(2)  # warm-up: the page cache for the interpreter and modules
    bare_starts, bare_stops = bare_agent_cycles(args.count)
    with contextlib.ExitStack() as stack:
        hub = stack.enter_context(running_hub("--content-port", str(free_port())))
        hubs = [(hub.base, sign_up(hub.base).key_headers)]
        if args.without_sandbox:
            stack.enter_context(path_without_bwrap())
            plain_hub = stack.enter_context(
                running_hub("--trusted-users", "--content-port", str(free_port()))
            )
            hubs.append((plain_hub.base, sign_up(plain_hub.base).key_headers))
        measured = asyncio.run(hub_cycles(hubs, args.count))
    times = measured[0]
    starts = times["start fresh"] + times["start again"]
    print(f"{args.count} cycles; hub timings are POST → progress event, as a client sees them")
    print(line("bare agent launch (baseline)", bare_starts))
    print(line("hub start, fresh project", times["start fresh"]))
    print(line("hub start, after a stop", times["start again"]))
    print(line("hub start, all", starts))
    print(line("bare agent stop (baseline)", bare_stops))
    print(line("hub stop", times["stop"]))
    print(
        f"ratio hub start / bare launch:  p50 {median(starts) / median(bare_starts):5.2f}x"
        f"   p95 {percentile(starts, 0.95) / percentile(bare_starts, 0.95):5.2f}x"
    )
    print(
        f"ratio hub stop / bare stop:     p50 {median(times['stop']) / median(bare_stops):5.2f}x"
        f"   p95 {percentile(times['stop'], 0.95) / percentile(bare_stops, 0.95):5.2f}x"
    )
    if not args.without_sandbox:
        return
    plain = measured[1]
    plain_starts = plain["start fresh"] + plain["start again"]
    print(line("hub start, all, no sandbox", plain_starts))
    print(line("hub stop, no sandbox", plain["stop"]))
    added = (median(starts) - median(plain_starts)) * 1000
    print(f"the sandbox adds to a start: p50 {added:+.1f} ms")


if __name__ == "__main__":
    main()
