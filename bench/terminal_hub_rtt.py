"""Keystroke → echoed output round trip through the hub's terminal relay.

Starts a real `cocalc-k8s serve` (fresh data directory, local backend) on a free port,
signs up, creates a project and opens its terminal through the hub
(`/api/v2/projects/{id}/terminals/{name}`, API key auth): browser → hub → agent → pty →
bash → agent → hub → browser. The baseline, in the same run, is the same measurement
straight against an agent's own terminal WebSocket (`start_agent`, same environment as the
hub gives its agents), so the ratio is the cost of the hub's relay.

Keystrokes are typed one at a time into an interactive bash ('a', then DEL, so the line
never grows; see bench/terminal_rtt.py) and each is timed until its echo arrives. After a
warm-up, the two paths are measured in alternating blocks so that machine noise hits both
alike. Prints p50/p99 of each and the ratio; the target is p50 < 10 ms through the hub.

    python bench/terminal_hub_rtt.py [--keystrokes 400]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiohttp
from _hub import running_hub, sign_up
from terminal_rtt import drain, summary, time_keystrokes

from cocalc_k8s.agent.launch import start_agent
from cocalc_k8s.backends.local import agent_environment

WARM_UP = 50
BLOCKS = 4
TARGET_P50_MS = 10.0


async def open_shell(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> aiohttp.ClientWebSocketResponse:
    """A terminal WebSocket with bash ready and quiet (its prompt read)."""
    ws = await session.ws_connect(url, headers=headers, max_msg_size=1 << 20)
    await ws.send_json({"type": "input", "data": "echo READY$((1+1))\r"})
    await drain(ws)
    return ws


async def create_project(session: aiohttp.ClientSession, base: str) -> str:
    async with session.post(f"{base}/api/v2/projects", json={"title": "rtt"}) as response:
        if response.status != 201:
            raise SystemExit(f"create: HTTP {response.status}: {await response.text()}")
        return str((await response.json())["project_id"])


async def measure(
    base: str, hub_headers: dict[str, str], agent_url: str, agent_headers: dict[str, str], n: int
) -> None:
    async with aiohttp.ClientSession() as session:
        async with aiohttp.ClientSession(headers=hub_headers) as api:
            project_id = await create_project(api, base)
        hub_url = f"{base}/api/v2/projects/{project_id}/terminals/bench"
        # Opening the hub's terminal starts the project first.
        hub_ws = await open_shell(session, hub_url, hub_headers)
        agent_ws = await open_shell(session, f"{agent_url}/terminals/bench", agent_headers)
        try:
            await time_keystrokes(agent_ws, WARM_UP, shell=True)
            await time_keystrokes(hub_ws, WARM_UP, shell=True)
            direct: list[float] = []
            relayed: list[float] = []
            block = max(2, n // BLOCKS // 2 * 2)  # even: every 'a' is followed by its DEL
            while len(relayed) < n:
                direct += await time_keystrokes(agent_ws, block, shell=True)
                relayed += await time_keystrokes(hub_ws, block, shell=True)
        finally:
            await hub_ws.close()
            await agent_ws.close()
    d50, d99 = summary(direct)
    h50, h99 = summary(relayed)
    print(f"keystrokes: {len(relayed)} each (after {WARM_UP} warm-up), alternating blocks")
    print(f"agent terminal, direct (baseline):  p50 {d50:7.3f} ms   p99 {d99:7.3f} ms")
    print(f"through the hub's relay:            p50 {h50:7.3f} ms   p99 {h99:7.3f} ms")
    print(f"ratio hub / direct:                 p50 {h50 / d50:7.2f}x    p99 {h99 / d99:7.2f}x")
    verdict = "met" if h50 < TARGET_P50_MS else "MISSED"
    print(f"target p50 < {TARGET_P50_MS:.0f} ms through the hub: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keystrokes", type=int, default=400)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cocalc-bench-rtt-"))
    agent = start_agent(home, env=agent_environment(home), stderr=subprocess.DEVNULL)
    try:
        with running_hub() as hub:
            account = sign_up(hub.base)
            asyncio.run(
                measure(hub.base, account.key_headers, agent.url, agent.headers, args.keystrokes)
            )
    finally:
        agent.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
