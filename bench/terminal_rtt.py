"""Keystroke → echoed output round trip over the project agent's terminal WebSocket.

Starts a real agent (`python -m cocalc_k8s.agent`, fresh home) and a plain aiohttp
WebSocket echo server (the baseline: same client, same JSON input message, a binary frame
back, no pty and no shell), each in its own process on 127.0.0.1. Then types keystrokes
one at a time into an interactive bash (readline echoes them: 'a', then DEL, so the line
never grows) and times each until its echo arrives. Prints p50/p99 for both and the ratio.
Machines here are noisy: only ratios from the same run mean much.

    python bench/terminal_rtt.py [--keystrokes 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from cocalc_k8s.agent.launch import AgentProcess, start_agent


async def echo_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.send_bytes(json.loads(msg.data)["data"].encode())
    return ws


def run_echo_server() -> None:
    """The baseline server (run in a child process): prints its port like the agent."""

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/echo", echo_handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


async def time_keystrokes(
    ws: aiohttp.ClientWebSocketResponse, count: int, *, shell: bool
) -> list[float]:
    """Seconds from sending each keystroke to receiving its echo."""
    samples = []
    for i in range(count):
        key = "a" if i % 2 == 0 or not shell else "\x7f"
        started = time.perf_counter()
        await ws.send_json({"type": "input", "data": key})
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise SystemExit(f"unexpected message {msg}")
            if key != "a" or b"a" in msg.data:
                break
        samples.append(time.perf_counter() - started)
    return samples


async def drain(ws: aiohttp.ClientWebSocketResponse, quiet: float = 0.3) -> None:
    """Read until nothing arrives for `quiet` seconds (the prompt after start-up)."""
    while True:
        try:
            await ws.receive(timeout=quiet)
        except TimeoutError:
            return


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return p50, p99


async def measure(agent: AgentProcess, echo_port: int, keystrokes: int) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{echo_port}/echo") as ws:
            await time_keystrokes(ws, 50, shell=False)  # warm-up
            baseline = await time_keystrokes(ws, keystrokes, shell=False)
        url = f"{agent.url}/terminals/bench"
        async with session.ws_connect(url, headers=agent.headers) as ws:
            await ws.send_json({"type": "input", "data": "echo READY$((1+1))\r"})
            await drain(ws)
            await time_keystrokes(ws, 50, shell=True)
            terminal = await time_keystrokes(ws, keystrokes, shell=True)
    b50, b99 = summary(baseline)
    t50, t99 = summary(terminal)
    print(f"keystrokes: {keystrokes} each (after 50 warm-up)")
    print(f"baseline aiohttp WebSocket echo:  p50 {b50:7.3f} ms   p99 {b99:7.3f} ms")
    print(f"agent terminal (pty + bash):      p50 {t50:7.3f} ms   p99 {t99:7.3f} ms")
    print(f"ratio terminal / baseline:        p50 {t50 / b50:7.2f}x    p99 {t99 / b99:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keystrokes", type=int, default=400)
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        run_echo_server()
    else:
        home = Path(tempfile.mkdtemp(prefix="terminal-rtt-"))
        agent = start_agent(home, env={**os.environ, "SHELL": "/bin/bash"})
        echo = subprocess.Popen(
            [sys.executable, __file__, "--echo-server"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert echo.stdout is not None
            echo_port = json.loads(echo.stdout.readline())["port"]
            asyncio.run(measure(agent, echo_port, args.keystrokes))
        finally:
            agent.stop()
            echo.terminate()
            echo.wait()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
