"""Many local projects at once: start COUNT projects together through the API, then stop
them together, and watch the hub's memory and processes.

Starts a real `cocalc-k8s serve` (fresh data directory, local backend) on a free port,
signs up and creates COUNT projects. Then opens every project's progress stream
(`GET …/progress?wait=1`), sends every `POST …/start` at once and waits for every
`running` event. Reports:

  - the time until all are running, and p50/max of each project's own start;
  - the hub's RSS before the starts, with all running, and after all are stopped;
  - the agents (the hub's child processes running `cocalc_k8s.agent`): RSS mean, max and
    total, and USS (memory only that process uses) mean and total, since RSS counts the
    shared interpreter pages once per agent;
  - after stopping all at once: the time until all are stopped, whether any agent process
    is left, and whether the hub's process count (PostgreSQL's processes aside: its
    backends follow the connection pool) is back where it was.

The baseline for the start time is one project started alone in the same run, so the
ratio is what starting COUNT together costs over one. The hub gets SIGTERM at the end,
also after an error, and any agent still alive after that is killed.

    python bench/many_projects.py [--count 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time

import aiohttp
import psutil
from _hub import Hub, median, running_hub, sign_up

SETTLE_TIMEOUT = 180.0
GONE_TIMEOUT = 15.0
MB = 1024 * 1024


def agents_of(hub: psutil.Process) -> list[psutil.Process]:
    """The hub's child processes that are project agents."""
    found = []
    for child in hub.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "cocalc_k8s.agent" in child.cmdline():
                found.append(child)
    return found


def process_count(hub: psutil.Process) -> int:
    """The hub's descendants other than the embedded PostgreSQL, whose backends come and
    go with the hub's connection pool."""
    count = 0
    for child in hub.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            count += child.name() != "postgres"
    return count


def db_connections(hub: psutil.Process) -> int:
    """PostgreSQL backends serving the hub's pool (`postgres: user db [local] …`)."""
    count = 0
    for child in hub.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            count += "[local]" in " ".join(child.cmdline())
    return count


def rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / MB


async def _events(stream: aiohttp.ClientResponse):  # type: ignore[no-untyped-def]
    async for line in stream.content:
        if line.startswith(b"data: "):
            yield json.loads(line[6:])


class Transition:
    """One project's progress stream, opened before its request is sent."""

    def __init__(self, session: aiohttp.ClientSession, url: str, target: str) -> None:
        self.session, self.url, self.target = session, url, target
        self.ready = asyncio.Event()
        self.go = asyncio.Event()
        self.sent = 0.0

    async def run(self, action: str) -> float:
        """Seconds from this project's POST to its `target` event."""
        async with self.session.get(f"{self.url}/progress?wait=1") as stream:
            if stream.status != 200:
                raise SystemExit(f"progress: HTTP {stream.status}")
            events = _events(stream)
            await anext(events)
            self.ready.set()
            await self.go.wait()
            self.sent = time.perf_counter()
            post = asyncio.create_task(self.session.post(f"{self.url}/{action}"))
            try:
                async for event in events:
                    if event["state"] == self.target:
                        return time.perf_counter() - self.sent
                    if event["state"] == "failed":
                        raise SystemExit(f"{self.url}: {action} failed: {event.get('error')}")
                raise SystemExit(f"{self.url}: the stream ended before {self.target}")
            finally:
                (await post).release()


async def all_at_once(
    session: aiohttp.ClientSession, urls: list[str], action: str, target: str
) -> tuple[float, list[float]]:
    """Open every stream, then send every request at once; (wall time, each one's time)."""
    transitions = [Transition(session, url, target) for url in urls]
    async with asyncio.timeout(SETTLE_TIMEOUT):
        tasks = [asyncio.create_task(t.run(action)) for t in transitions]
        try:
            await asyncio.gather(*(t.ready.wait() for t in transitions))
            started = time.perf_counter()
            for t in transitions:
                t.go.set()
            each = await asyncio.gather(*tasks)
            return time.perf_counter() - started, list(each)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def create_projects(session: aiohttp.ClientSession, base: str, count: int) -> list[str]:
    urls = []
    for i in range(count):
        async with session.post(f"{base}/api/v2/projects", json={"title": f"p{i}"}) as response:
            if response.status != 201:
                raise SystemExit(f"create: HTTP {response.status}: {await response.text()}")
            urls.append(f"{base}/api/v2/projects/{(await response.json())['project_id']}")
    return urls


async def wait_gone(hub: psutil.Process, before: int) -> tuple[list[psutil.Process], int]:
    """Wait (bounded) for the agents to disappear; (agents left, process count)."""
    deadline = time.monotonic() + GONE_TIMEOUT
    while True:
        left, count = agents_of(hub), process_count(hub)
        if (not left and count <= before) or time.monotonic() > deadline:
            return left, count
        await asyncio.sleep(0.1)


async def run(hub: Hub, headers: dict[str, str], count: int) -> None:
    hub_process = psutil.Process(hub.process.pid)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=SETTLE_TIMEOUT)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as s:
        single, *urls = await create_projects(s, hub.base, count + 1)
        # Baseline: one project started (and stopped) alone.
        alone, _ = await all_at_once(s, [single], "start", "running")
        await all_at_once(s, [single], "stop", "stopped")
        before_left, _ = await wait_gone(hub_process, 10**6)
        assert not before_left
        procs_before = process_count(hub_process)
        db_before = db_connections(hub_process)
        hub_before = rss_mb(hub_process)

        start_wall, starts = await all_at_once(s, urls, "start", "running")
        agents = agents_of(hub_process)
        hub_running = rss_mb(hub_process)
        rss = [rss_mb(a) for a in agents]
        uss = [a.memory_full_info().uss / MB for a in agents]
        procs_running = process_count(hub_process)
        db_running = db_connections(hub_process)

        stop_wall, stops = await all_at_once(s, urls, "stop", "stopped")
        left, procs_after = await wait_gone(hub_process, procs_before)
        hub_after = rss_mb(hub_process)
        db_after = db_connections(hub_process)

    print(f"{count} projects started at once (local backend), then stopped at once")
    print(f"one project alone (baseline):   start {alone * 1000:8.0f} ms")
    print(
        f"all {count} running after:        {start_wall * 1000:8.0f} ms"
        f"   (ratio to one alone {start_wall / alone:5.1f}x; per project p50"
        f" {median(starts) * 1000:.0f} ms, max {max(starts) * 1000:.0f} ms)"
    )
    print(
        f"all {count} stopped after:        {stop_wall * 1000:8.0f} ms"
        f"   (per project p50 {median(stops) * 1000:.0f} ms, max {max(stops) * 1000:.0f} ms)"
    )
    print(f"agents found while running:     {len(agents)} (expected {count})")
    print(
        f"agent RSS:  mean {statistics.fmean(rss):6.1f} MB   max {max(rss):6.1f} MB"
        f"   total {sum(rss):7.1f} MB"
    )
    print(f"agent USS:  mean {statistics.fmean(uss):6.1f} MB   total {sum(uss):7.1f} MB")
    print(
        f"hub RSS:    before {hub_before:6.1f} MB   running {hub_running:6.1f} MB"
        f"   after stop {hub_after:6.1f} MB   (+{hub_running - hub_before:.1f} MB while"
        f" running, {hub_after - hub_before:+.1f} MB left after)"
    )
    print(
        f"hub descendants but PostgreSQL: before {procs_before}   running {procs_running}"
        f"   after stop {procs_after}"
    )
    print(
        f"PostgreSQL connections (pool):  before {db_before}   running {db_running}"
        f"   after stop {db_after}"
    )
    verdict = "clean" if not left and procs_after <= procs_before else "NOT CLEAN"
    print(f"after stop: {len(left)} agent(s) left, {verdict}")
    if len(agents) != count:
        raise SystemExit(f"expected {count} agents while running, found {len(agents)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    seen: list[psutil.Process] = []
    try:
        with running_hub() as hub:
            hub_process = psutil.Process(hub.process.pid)
            try:
                account = sign_up(hub.base)
                asyncio.run(run(hub, account.key_headers, args.count))
            finally:
                seen = agents_of(hub_process)
    finally:
        # The hub stops its agents on SIGTERM (and they die with it); make sure.
        _, alive = psutil.wait_procs(seen, timeout=GONE_TIMEOUT)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        if alive:
            print(f"killed {len(alive)} agent(s) the hub left behind")


if __name__ == "__main__":
    main()
