"""The agent's /exec and its secrets: output, exit codes, timeouts that kill the whole group,
output caps, the event loop kept free, and no token or hub variable reaching a command."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cocalc_k8s.agent.launch import AgentProcess, start_agent

CAP = 1000
HUB_ENV = {"COCALC_SESSION_SECRET": "hub-session-secret", "DATABASE_URL": "postgresql://pw@db"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("agent-exec")
    (home / "sub").mkdir()
    return home


@pytest.fixture(scope="module")
def agent(home: Path) -> Iterator[AgentProcess]:
    env = {**os.environ, **HUB_ENV}
    process = start_agent(home, args=["--exec-output-bytes", str(CAP)], env=env)
    yield process
    assert process.stop() == 0


async def run(http: aiohttp.ClientSession, body: dict[str, Any], status: int = 200) -> Any:
    async with http.post("/exec", json=body) as r:
        assert r.status == status, await r.text()
        return await r.json()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_for(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_output_and_exit_code(http: aiohttp.ClientSession, home: Path) -> None:
    result = await run(http, {"command": "echo out; echo err >&2; pwd; exit 7"})
    assert result == {
        "stdout": f"out\n{home}\n",
        "stderr": "err\n",
        "exit_code": 7,
        "timed_out": False,
        "truncated": False,
    }
    result = await run(http, {"command": "pwd", "cwd": "sub"})
    assert result["stdout"] == f"{home / 'sub'}\n"
    assert (await run(http, {"command": "kill -9 $$"}))["exit_code"] == -signal.SIGKILL


async def test_timeout_kills_the_whole_group(http: aiohttp.ClientSession, home: Path) -> None:
    started = time.monotonic()
    result = await run(
        http,
        {"command": "(trap '' TERM HUP; sleep 300) & echo $! > bg.pid; sleep 300", "timeout": 0.5},
    )
    assert result["timed_out"] and result["exit_code"] == -signal.SIGKILL
    assert time.monotonic() - started < 5
    grandchild = int((home / "bg.pid").read_text())
    await wait_for(lambda: not alive(grandchild))


async def test_shell_exit_does_not_wait_for_background_jobs(
    http: aiohttp.ClientSession, home: Path
) -> None:
    started = time.monotonic()
    result = await run(http, {"command": "sleep 60 & echo $! > left.pid; echo done"})
    assert result["stdout"] == "done\n" and not result["timed_out"]
    assert time.monotonic() - started < 5
    os.kill(int((home / "left.pid").read_text()), signal.SIGKILL)


async def test_output_is_capped(http: aiohttp.ClientSession) -> None:
    result = await run(http, {"command": "head -c 500000 /dev/zero | tr '\\0' a; echo e >&2"})
    assert result["stdout"] == "a" * CAP and result["stderr"] == "e\n"
    assert result["truncated"] and result["exit_code"] == 0


async def test_exec_does_not_block_the_agent(http: aiohttp.ClientSession, home: Path) -> None:
    slow = asyncio.create_task(run(http, {"command": "touch started; sleep 1; echo slow"}))
    await wait_for(lambda: (home / "started").exists())
    started = time.monotonic()
    async with http.get("/health") as r:
        assert r.status == 200
    assert time.monotonic() - started < 0.5
    assert (await slow)["stdout"] == "slow\n"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"command": ""},
        {"command": 42},
        {"command": "true", "timeout": 0},
        {"command": "true", "timeout": 3601},
        {"command": "true", "timeout": "10"},
        {"command": "true", "timeout": True},
        {"command": "true", "cwd": 3},
        {"command": "true", "cwd": "no-such-dir"},
        {"command": "true", "cwd": "../"},
        [1, 2],
    ],
)
async def test_bad_requests(http: aiohttp.ClientSession, body: Any) -> None:
    async with http.post("/exec", json=body) as r:
        assert r.status in (400, 403, 404) and "error" in await r.json()


async def test_no_secret_reaches_commands(http: aiohttp.ClientSession, agent: AgentProcess) -> None:
    result = await run(
        http,
        {"command": "env; tr '\\0' ' ' < /proc/$PPID/cmdline; cat /proc/$PPID/environ || true"},
    )
    output = result["stdout"] + result["stderr"]
    assert "HOME=" in output and "cocalc_k8s.agent" in output
    for secret in (agent.token, *HUB_ENV.values(), *HUB_ENV):
        assert secret not in output


def test_token_not_in_the_agents_arguments(agent: AgentProcess) -> None:
    cmdline = Path(f"/proc/{agent.process.pid}/cmdline").read_bytes()
    assert b"cocalc_k8s.agent" in cmdline and agent.token.encode() not in cmdline


async def test_token_on_a_descriptor_and_clean_sigterm(tmp_path: Path) -> None:
    agent = start_agent(tmp_path, token_on_fd=True)
    try:
        async with aiohttp.ClientSession(agent.url, headers=agent.headers) as http:
            async with http.get("/health") as r:
                assert r.status == 200
            # Written aside and renamed: the test never reads a half-written pid.
            command = "echo $$ > sh.tmp && mv sh.tmp sh.pid; sleep 300"
            slow = asyncio.create_task(run(http, {"command": command}))
            await wait_for(lambda: (tmp_path / "sh.pid").exists())
            shell = int((tmp_path / "sh.pid").read_text())
            agent.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(agent.process.wait, 10)
            assert agent.process.returncode == 0
            await wait_for(lambda: not alive(shell))
            # Stopped, not abandoned: the command's caller still gets its answer.
            assert (await slow)["exit_code"] == -signal.SIGTERM
    finally:
        agent.stop()
