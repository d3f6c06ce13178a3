"""The hub's proxy (content origin) against a direct connection and configurable-http-proxy.

Starts, all on 127.0.0.1 and free ports:

- a small, fast aiohttp backend in its own process (`bench/_proxy_backend.py`: `/small`,
  `/1m`, `/ws` echo);
- a real `cocalc-k8s serve` (fresh data directory, local backend, `--content-port`), signs
  up, creates an API key and a project, starts it; the backend is then reachable as the
  project's port: `http://127.0.0.1:<content port>/<project_id>/port/<backend port>/…` with
  `Host: <project_id>.localhost:<content port>` (the project's own origin, the default)
  and `Authorization: Bearer <key>`;
- configurable-http-proxy (JupyterHub's proxy; `npm install configurable-http-proxy@4`
  into a cache directory under /tmp, reused between runs) with the backend as its
  default target;
- for the 1 MiB case, a splice relay (`bench/_proxy_backend.py --relay-to`): TCP moved in
  the kernel with no HTTP at all, the most any proxy sharing these cores can reach.

Then, with `wrk` (64 keep-alive connections, one thread), interleaving the three targets
over `--rounds` rounds and reporting medians (the machine is noisy): `/small` req/s and
p50 latency (under load, and with one connection), `/1m` MB/s. Then WebSocket echo round
trips on one connection (direct vs through the proxy), and `--ws-count` WebSockets held
through the proxy for `--ws-hold` seconds, each sending a message every `--ws-interval`
seconds, with errors counted and the hub process's RSS before and during.

Only figures and ratios from this run are printed; nothing is asserted. Every process the
script starts is stopped when it ends, also on errors and on SIGTERM/Ctrl-C.

    python bench/proxy.py                                  # the default configuration
    python bench/proxy.py --seconds 2 --rounds 1 --ws-count 200 --ws-hold 10   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
from _hub import free_port, median, percentile, post_json, running_hub, sign_up

BENCH_DIR = Path(__file__).resolve().parent
CHP_CACHE = Path(tempfile.gettempdir()) / "cocalc-bench-chp"
CHP_PACKAGE = "configurable-http-proxy@4"
ONE_MIB = 1 << 20
SMALL_BODY = b"hello from the backend\n"  # as bench/_proxy_backend.py answers
READY_TIMEOUT = 30.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
WS_OPEN_TIMEOUT = 10.0
WS_ECHO_TIMEOUT = 10.0
WS_OPEN_CONCURRENCY = 100
WS_GIVE_UP_AFTER = 100  # failed opens after which the rest are not attempted


# -- processes ---------------------------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def child(args: list[str], **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        stop_process(process)


def wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    error: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            error = exc
            time.sleep(0.05)
    raise SystemExit(f"{what} did not answer {url} in {READY_TIMEOUT:.0f} s: {error}")


def sandbox_of(hub: psutil.Process) -> int | None:
    """A process of the project's sandbox: a descendant of the hub in another network
    namespace (None: the hub runs projects unsandboxed, on this machine's loopback)."""
    own = os.readlink("/proc/self/ns/net")
    for process in hub.children(recursive=True):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{process.pid}/ns/net") != own:
                return process.pid
    return None


@contextlib.contextmanager
def backend_in_project(
    port: int, uvloop: bool, pid: int, url: str, headers: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """The same backend on the sandboxed project's own loopback (its network namespace,
    entered with nsenter: root only), where the hub reaches it through the agent."""
    if os.geteuid() != 0:
        raise SystemExit("a sandboxed project's loopback is entered with nsenter: run as root")
    args = ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable]
    args += [str(BENCH_DIR / "_proxy_backend.py"), str(port)]
    with child(args + (["--uvloop"] if uvloop else [])) as process:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                check(url, headers, SMALL_BODY, "the project's backend")
                break
            except SystemExit:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield process


@contextlib.contextmanager
def backend(port: int, uvloop: bool, uid: int | None) -> Iterator[subprocess.Popen[bytes]]:
    """The backend, run as the project's user when the hub gives projects users of their
    own: the hub proxies only to ports its project's user listens on."""
    args = [sys.executable, str(BENCH_DIR / "_proxy_backend.py"), str(port)]
    as_user: dict[str, object] = {}
    if uid is not None and uid != os.geteuid():
        as_user = {"user": uid, "group": uid, "extra_groups": []}
    with child(args + (["--uvloop"] if uvloop else []), **as_user) as process:
        wait_http(f"http://127.0.0.1:{port}/small", process, "the backend")
        yield process


def chp_executable() -> Path | None:
    """configurable-http-proxy from the cache directory, installed there with npm if needed."""
    exe = CHP_CACHE / "node_modules" / ".bin" / "configurable-http-proxy"
    if not exe.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            print("node/npm not found: configurable-http-proxy skipped", file=sys.stderr)
            return None
        CHP_CACHE.mkdir(parents=True, exist_ok=True)
        print(f"npm install {CHP_PACKAGE} into {CHP_CACHE} …", file=sys.stderr)
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(CHP_CACHE),
             CHP_PACKAGE],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode != 0 or not exe.exists():
            print(f"npm install failed: CHP skipped\n{result.stderr[-2000:]}", file=sys.stderr)
            return None
    return exe


@contextlib.contextmanager
def splice_relay(port: int, target_port: int) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, str(BENCH_DIR / "_proxy_backend.py"), str(port)]
    with child([*args, "--relay-to", str(target_port)]) as process:
        wait_http(f"http://127.0.0.1:{port}/small", process, "the splice relay")
        yield process


@contextlib.contextmanager
def chp(exe: Path, port: int, target_port: int) -> Iterator[subprocess.Popen[bytes]]:
    args = [
        str(exe), "--ip", "127.0.0.1", "--port", str(port),
        "--api-ip", "127.0.0.1", "--api-port", str(free_port()),
        "--default-target", f"http://127.0.0.1:{target_port}", "--log-level", "error",
    ]  # fmt: skip
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16)}
    with child(args, env=env) as process:
        wait_http(f"http://127.0.0.1:{port}/small", process, "configurable-http-proxy")
        yield process


# -- the hub's project -------------------------------------------------------------------


def get_json(url: str, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def running_project(base: str, headers: dict[str, str]) -> str:
    project, _ = post_json(f"{base}/api/v2/projects", {"title": "proxy bench"}, headers)
    project_id = project["project_id"]
    post_json(f"{base}/api/v2/projects/{project_id}/start", {}, headers)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = get_json(f"{base}/api/v2/projects/{project_id}", headers).get("state")
        if state == "running":
            return project_id
        if state == "failed":
            raise SystemExit(f"the project failed to start: {state}")
        time.sleep(0.2)
    raise SystemExit(f"the project was not running after {START_TIMEOUT:.0f} s")


def check(url: str, headers: dict[str, str], expect: bytes | int, what: str) -> None:
    """One GET: the body (or its length) is what the backend serves, or exit."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
    except OSError as exc:
        raise SystemExit(f"{what}: GET {url}: {exc}") from None
    ok = len(body) == expect if isinstance(expect, int) else body == expect
    if not ok:
        raise SystemExit(f"{what}: GET {url}: unexpected body ({len(body)} bytes)")


# -- wrk ---------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


@dataclass
class Load:
    rps: float
    bytes_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu: dict[str, float] = field(default_factory=dict)  # process name → CPU % during the run


def run_wrk(
    url: str,
    headers: dict[str, str],
    seconds: float,
    connections: int,
    watch: dict[str, psutil.Process],
) -> Load:
    args = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--latency",
    ]
    args += ["--timeout", "10s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    before = {name: sum(p.cpu_times()[:2]) for name, p in watch.items()}
    started = time.monotonic()
    result = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    elapsed = time.monotonic() - started
    cpu = {
        name: 100 * (sum(p.cpu_times()[:2]) - before[name]) / elapsed for name, p in watch.items()
    }
    out = result.stdout
    if result.returncode != 0 or "Requests/sec" not in out:
        raise SystemExit(f"wrk failed on {url}:\n{out}\n{result.stderr}")
    errors = sum(
        int(n)
        for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout):? (\d+)", out)
    )
    return Load(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        bytes_per_s=_size(re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)),
        p50_ms=_latency(re.search(r"\s50%\s+([\d.]+)(\w+)", out)),
        p99_ms=_latency(re.search(r"\s99%\s+([\d.]+)(\w+)", out)),
        errors=errors,
        cpu=cpu,
    )


def _latency(match: re.Match[str] | None) -> float:
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def _size(match: re.Match[str] | None) -> float:
    return float(match.group(1)) * _SIZES[match.group(2)] if match else float("nan")


@dataclass
class Target:
    name: str
    base: str  # the backend's paths are appended
    headers: dict[str, str]
    proxy: psutil.Process | None  # the proxy's process, for its CPU
    large_only: bool = False  # measured with 1 MiB responses only
    backend: psutil.Process | None = None  # its own backend (in the project's sandbox)


def http_rounds(
    targets: list[Target],
    seconds: float,
    rounds: int,
    connections: int,
    backend_proc: psutil.Process,
    only: set[str],
) -> dict[tuple[str, str], list[Load]]:
    """Per (case, target name): one Load per round; the targets' order rotates each round."""
    results: dict[tuple[str, str], list[Load]] = collections.defaultdict(list)
    cases = [
        ("/small", "/small", connections, seconds),
        ("/1m", "/1m", connections, seconds),
        ("/small c1", "/small", 1, max(1, seconds // 2)),
    ]
    cases = [case for case in cases if case[0].split()[0].lstrip("/") in only]
    for t in targets:  # warm-up: connections, pools, caches
        run_wrk(t.base + "/small", t.headers, 1, connections, {})
    for r in range(rounds):
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for case, path, conns, secs in cases:
            for t in order:
                if t.large_only and case != "/1m":
                    continue
                watch = {"backend": t.backend or backend_proc}
                if t.proxy is not None:
                    watch["proxy"] = t.proxy
                load = run_wrk(t.base + path, t.headers, secs, conns, watch)
                results[(case, t.name)].append(load)
                print(
                    f"  round {r + 1} {case:10} {t.name:8} {load.rps:9.0f} req/s"
                    f" {load.bytes_per_s / 1e6:8.1f} MB/s  p50 {load.p50_ms:7.3f} ms"
                    f"  errors {load.errors}"
                    + "".join(f"  {k} CPU {v:3.0f}%" for k, v in load.cpu.items()),
                    flush=True,
                )
    return results


def report_http(results: dict[tuple[str, str], list[Load]], names: list[str]) -> None:
    def med(case: str, name: str, attr: str) -> float:
        values = [getattr(load, attr) for load in results[(case, name)]]
        return median(values) if values else float("nan")

    def cpu(case: str, name: str, key: str) -> str:
        values = [load.cpu[key] for load in results[(case, name)] if key in load.cpu]
        return f"{median(values):4.0f}%" if values else "    -"

    def per_request(case: str, name: str) -> str:
        values = [
            x.cpu["proxy"] / 100 / x.rps * 1e6 for x in results[(case, name)] if "proxy" in x.cpu
        ]
        return f"{median(values):11.0f} us" if values else f"{'-':>14}"

    errors = {n: sum(x.errors for c in ("/small", "/1m") for x in results[(c, n)]) for n in names}
    large_names = names
    names = [n for n in names if results[("/small", n)]]
    print("\n/small, 64 connections (medians)")
    print(f"  {'target':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
          f" {'proxy CPU':>10} {'backend CPU':>12} {'proxy CPU/req':>14}")  # fmt: skip
    for n in names:
        print(
            f"  {n:8} {med('/small', n, 'rps'):9.0f} {med('/small', n, 'p50_ms'):8.3f}"
            f" {med('/small', n, 'p99_ms'):8.3f} {errors[n]:7d}"
            f" {cpu('/small', n, 'proxy'):>10} {cpu('/small', n, 'backend'):>12}"
            f" {per_request('/small', n)}"
        )
    print(
        "  (CPU: % of one core during the run; CPU/req: the proxy's CPU time per request,"
        " the figure least disturbed by other load on the machine)"
    )
    direct = med("/small", "direct", "rps")
    hub = med("/small", "hub", "rps")
    print(f"  hub proxy / direct          {hub / direct:6.2f}")
    if "chp" in names:
        chp_rps = med("/small", "chp", "rps")
        print(f"  CHP / direct                {chp_rps / direct:6.2f}")
        print(f"  hub proxy / CHP             {hub / chp_rps:6.2f}   (target >= 1.5)")
    for n in [n for n in names if n != "direct"]:
        added = med("/small", n, "p50_ms") - med("/small", "direct", "p50_ms")
        added1 = med("/small c1", n, "p50_ms") - med("/small c1", "direct", "p50_ms")
        label = "hub proxy" if n == "hub" else "CHP"
        print(
            f"  added p50 latency, {label:9}: {added:6.3f} ms under load (64 conns),"
            f" {added1:6.3f} ms with 1 connection (target <= 2 ms)"
        )
    print("\n/small, 1 connection (medians)")
    for n in names:
        print(
            f"  {n:8} {med('/small c1', n, 'rps'):9.0f} req/s"
            f"  p50 {med('/small c1', n, 'p50_ms'):7.3f} ms"
            f"  p99 {med('/small c1', n, 'p99_ms'):7.3f} ms"
        )
    print("\n/1m (1 MiB responses), 64 connections (medians)")
    for n in large_names:
        print(
            f"  {n:8} {med('/1m', n, 'bytes_per_s') / 1e6:9.1f} MB/s"
            f"  {med('/1m', n, 'rps'):7.0f} req/s"
            f"  proxy CPU {cpu('/1m', n, 'proxy')}  backend CPU {cpu('/1m', n, 'backend')}"
        )
    d1 = med("/1m", "direct", "bytes_per_s")
    print(
        f"  hub proxy / direct          {med('/1m', 'hub', 'bytes_per_s') / d1:6.2f}"
        "   (target >= 0.8)"
    )
    if "chp" in names:
        print(f"  CHP / direct                {med('/1m', 'chp', 'bytes_per_s') / d1:6.2f}")
    if "relay" in large_names:
        relay = med("/1m", "relay", "bytes_per_s")
        print(
            f"  splice relay / direct       {relay / d1:6.2f}"
            "   (TCP relay in the kernel, no HTTP: what any proxy here can reach at best)"
        )
        print(f"  hub proxy / splice relay    {med('/1m', 'hub', 'bytes_per_s') / relay:6.2f}")


# -- WebSockets --------------------------------------------------------------------------


async def ws_echo(url: str, headers: dict[str, str], warmup: int, count: int) -> list[float]:
    """Seconds per round trip of a 32-byte text message, on one connection."""
    payload = "x" * 32
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=WS_OPEN_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with asyncio.timeout(WS_OPEN_TIMEOUT):
            ws = await session.ws_connect(url, headers=headers, autoping=False, max_msg_size=0)
        samples = []
        async with ws:
            for i in range(warmup + count):
                started = time.perf_counter()
                await ws.send_str(payload)
                async with asyncio.timeout(WS_ECHO_TIMEOUT):
                    message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT or message.data != payload:
                    raise SystemExit(f"{url}: bad echo {message.type} {message.data!r:.80}")
                if i >= warmup:
                    samples.append(time.perf_counter() - started)
        return samples


async def ws_rtt(targets: list[Target], rounds: int, count: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = collections.defaultdict(list)
    for r in range(rounds):
        for t in targets if r % 2 == 0 else targets[::-1]:
            url = t.base.replace("http://", "ws://", 1) + "/ws"
            samples[t.name] += await ws_echo(url, t.headers, warmup=200, count=count)
    return samples


def report_ws_rtt(samples: dict[str, list[float]]) -> None:
    print(f"\nWebSocket echo, one connection, {len(samples['direct'])} round trips each")
    for name, values in samples.items():
        ms = [v * 1000 for v in values]
        print(
            f"  {name:8} {len(values) / sum(values):9.0f} round trips/s"
            f"  p50 {median(ms):7.3f} ms  p99 {percentile(ms, 0.99):7.3f} ms"
        )
    d, h = samples["direct"], samples["hub"]
    print(f"  hub proxy / direct round trips/s  {(len(h) / sum(h)) / (len(d) / sum(d)):6.2f}")
    print(f"  added p50 latency                 {1000 * (median(h) - median(d)):6.3f} ms")


async def ws_hold(
    target: Target, count: int, hold: float, interval: float, hub: psutil.Process
) -> None:
    url = target.base.replace("http://", "ws://", 1) + "/ws"
    errors: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    rss: list[int] = []
    fds: list[int] = []
    rss_before = hub.memory_info().rss
    fds_before = hub.num_fds()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=WS_OPEN_TIMEOUT)
    gate = asyncio.Semaphore(WS_OPEN_CONCURRENCY)
    failed_opens = 0

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def open_one() -> aiohttp.ClientWebSocketResponse | None:
            nonlocal failed_opens
            async with gate:
                if failed_opens >= WS_GIVE_UP_AFTER:
                    errors["open: not attempted (too many failures)"] += 1
                    return None
                try:
                    async with asyncio.timeout(WS_OPEN_TIMEOUT):
                        return await session.ws_connect(
                            url, headers=target.headers, autoping=True, max_msg_size=0
                        )
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    failed_opens += 1
                    errors[f"open: {type(exc).__name__}"] += 1
                    return None

        opening = time.monotonic()
        opened = await asyncio.gather(*(open_one() for _ in range(count)))
        open_seconds = time.monotonic() - opening
        sockets = [ws for ws in opened if ws is not None]
        rss_open = hub.memory_info().rss
        print(
            f"\n{len(sockets)} of {count} WebSockets open through the hub's proxy"
            f" in {open_seconds:.1f} s; holding them {hold:g} s, a message on each every"
            f" {interval:g} s",
            flush=True,
        )
        end = time.monotonic() + hold
        lost = 0

        async def keep(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal lost
            await asyncio.sleep(min(interval * i / max(1, len(sockets)), end - time.monotonic()))
            n = 0
            while time.monotonic() < end:
                payload = f"{i}:{n}"
                started = time.perf_counter()
                try:
                    await ws.send_str(payload)
                    async with asyncio.timeout(WS_ECHO_TIMEOUT):
                        message = await ws.receive()
                except (TimeoutError, aiohttp.ClientError, OSError, ConnectionError) as exc:
                    errors[f"echo: {type(exc).__name__}"] += 1
                    lost += 1
                    return
                if message.type != aiohttp.WSMsgType.TEXT or message.data != payload:
                    errors[f"echo: {message.type.name}"] += 1
                    lost += 1
                    return
                latencies.append(time.perf_counter() - started)
                n += 1
                await asyncio.sleep(max(0.0, min(interval, end - time.monotonic())))

        async def sample() -> None:
            while time.monotonic() < end:
                rss.append(hub.memory_info().rss)
                fds.append(hub.num_fds())
                await asyncio.sleep(1.0)

        await asyncio.gather(sample(), *(keep(i, ws) for i, ws in enumerate(sockets)))
        rss_end = hub.memory_info().rss
        still_open = sum(1 for ws in sockets if not ws.closed)
        for ws in sockets:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await ws.close()
    await asyncio.sleep(1.0)
    rss_after = hub.memory_info().rss
    mib = 1 / (1 << 20)
    ms = sorted(v * 1000 for v in latencies)
    print(f"  echoes {len(ms)}, errors {sum(errors.values())}: {dict(errors) or 'none'}")
    print(f"  connections lost while held: {lost}; still open at the end: {still_open}")
    if ms:
        print(
            f"  echo latency p50 {median(ms):.3f} ms, p99 {percentile(ms, 0.99):.3f} ms,"
            f" max {ms[-1]:.3f} ms"
        )
    print(
        f"  hub RSS: before {rss_before * mib:.1f} MiB, all open {rss_open * mib:.1f} MiB,"
        f" during max {max(rss or [rss_open]) * mib:.1f} MiB, end {rss_end * mib:.1f} MiB,"
        f" 1 s after closing {rss_after * mib:.1f} MiB"
    )
    if sockets:
        per = (max(rss or [rss_open]) - rss_before) / len(sockets) / 1024
        print(f"  hub RSS per held WebSocket: {per:.1f} KiB")
    print(f"  hub open files: before {fds_before}, during max {max(fds or [0])}")


# -- main --------------------------------------------------------------------------------


def raise_nofile(wanted: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the context managers: every child is stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ws-messages", type=int, default=2000, help="echo round trips")
    parser.add_argument("--ws-count", type=int, default=1000, help="WebSockets held")
    parser.add_argument("--ws-hold", type=float, default=60, help="seconds they are held")
    parser.add_argument("--ws-interval", type=float, default=5, help="seconds between echoes")
    parser.add_argument("--no-chp", action="store_true", help="skip configurable-http-proxy")
    parser.add_argument("--uvloop", action="store_true", help="uvloop in the hub and backend")
    parser.add_argument(
        "--only", default="small,1m,ws", help="what to measure: small, 1m, ws (comma-separated)"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (Debian: apt-get install wrk)")
    signal.signal(signal.SIGTERM, _terminate)

    # Every held WebSocket costs this process one descriptor, the hub two, the backend one;
    # children inherit the raised limit, and the hub gets an explicit one.
    soft, hard = raise_nofile(args.ws_count * 2 + 1024)
    nofile = soft  # the hub: the same (never less than it would inherit)
    backend_port, content_port, chp_port = free_port(), free_port(), free_port()
    exe = None if args.no_chp else chp_executable()
    with contextlib.ExitStack() as stack:
        hub = stack.enter_context(
            running_hub("--content-port", str(content_port), nofile=nofile, uvloop=args.uvloop)
        )
        hub_proc = psutil.Process(hub.process.pid)
        account = sign_up(hub.base)
        project_id = running_project(hub.base, account.key_headers)
        answer, _ = post_json(
            f"{hub.base}/api/v2/projects/{project_id}/exec",
            {"command": "id -u"},
            account.key_headers,
        )
        uid = int(answer["stdout"])
        sandbox = sandbox_of(hub_proc)
        host_uid = None if sandbox is not None else uid  # only the direct target runs here
        backend_process = stack.enter_context(backend(backend_port, args.uvloop, host_uid))
        direct = Target("direct", f"http://127.0.0.1:{backend_port}", {}, None)
        # The project's own origin (the default, an origin per project under localhost),
        # reached on 127.0.0.1 by its Host header.
        own_host = {"Host": f"{project_id}.localhost:{content_port}"}
        proxied = Target(
            "hub",
            f"http://127.0.0.1:{content_port}/{project_id}/port/{backend_port}",
            {**account.key_headers, **own_host},
            hub_proc,
        )
        if sandbox is not None:  # the project's loopback is its own: a backend there too
            inside = stack.enter_context(
                backend_in_project(
                    backend_port, args.uvloop, sandbox, proxied.base + "/small", proxied.headers
                )
            )
            proxied.backend = psutil.Process(inside.pid)
        targets = [direct, proxied]
        if exe is not None:
            chp_process = stack.enter_context(chp(exe, chp_port, backend_port))
            targets.append(
                Target("chp", f"http://127.0.0.1:{chp_port}", {}, psutil.Process(chp_process.pid))
            )
        if "1m" in only:
            relay_port = free_port()
            relay_process = stack.enter_context(splice_relay(relay_port, backend_port))
            relay_proc = psutil.Process(relay_process.pid)
            relay = Target("relay", f"http://127.0.0.1:{relay_port}", {}, relay_proc, True)
            targets.append(relay)
        for t in targets:
            check(t.base + "/small", t.headers, SMALL_BODY, t.name)
            check(t.base + "/1m", t.headers, ONE_MIB, t.name)

        hub_soft, hub_hard = hub_proc.rlimit(psutil.RLIMIT_NOFILE)
        print(
            f"cpus {os.cpu_count()}, python {sys.version.split()[0]},"
            f" event loop {'uvloop' if args.uvloop else 'asyncio'};"
            f" open-file limit: this process {soft}/{hard}, hub {hub_soft}/{hub_hard}"
        )
        print(
            f"wrk -t1 -c{args.connections} --latency, {args.seconds:g} s per run,"
            f" {args.rounds} interleaved rounds; targets: {', '.join(t.name for t in targets)}"
        )
        results = http_rounds(
            targets,
            args.seconds,
            args.rounds,
            args.connections,
            psutil.Process(backend_process.pid),
            only,
        )
        if only & {"small", "1m"}:
            report_http(results, [t.name for t in targets])
        if "ws" not in only:
            return

        run = asyncio.run
        if args.uvloop:
            import uvloop

            run = uvloop.run
        report_ws_rtt(run(ws_rtt([direct, proxied], max(2, args.rounds), args.ws_messages)))
        if args.ws_count > 0 and args.ws_hold > 0:
            run(ws_hold(proxied, args.ws_count, args.ws_hold, args.ws_interval, hub_proc))


if __name__ == "__main__":
    main()
