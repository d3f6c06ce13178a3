"""Shared terminals over real WebSockets: shared output, scrollback for late joiners, resize,
exit, survival without clients, kill, names, and no secret in the shell's environment."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cocalc_k8s.agent.launch import AgentProcess, start_agent

Socket = aiohttp.ClientWebSocketResponse


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    home = tmp_path_factory.mktemp("agent-terminals")
    env = {**os.environ, "SHELL": "/bin/bash", "COCALC_SECRET": "hub-secret"}
    process = start_agent(home, env=env)
    yield process
    assert process.stop() == 0


async def expect(ws: Socket, needle: bytes, within: float = 10.0) -> bytes:
    """Output received until `needle` appears (fails after `within` seconds)."""
    seen = b""
    deadline = time.monotonic() + within
    while needle not in seen:
        msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
        assert msg.type == aiohttp.WSMsgType.BINARY, (msg, seen[-500:])
        seen += msg.data
    return seen


async def typed(ws: Socket, text: str) -> None:
    await ws.send_json({"type": "input", "data": text})


async def terminals(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/terminals") as r:
        return {t["name"]: t for t in (await r.json())["terminals"]}


async def until(condition: Any, within: float = 5.0) -> None:
    """Wait for `condition()` (a bool or an awaitable of one) to hold."""
    deadline = time.monotonic() + within
    while not await _value(condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_shared_terminal(http: aiohttp.ClientSession) -> None:
    async with http.ws_connect("/terminals/shared") as a, http.ws_connect("/terminals/shared") as b:
        # $((6*7)) is only 42 in the output, never in the echoed keystrokes.
        await typed(a, "echo $((6*7))MARK\r")
        await expect(a, b"42MARK")
        await expect(b, b"42MARK")
        await typed(b, "echo $((7*7))FROM_B\r")
        await expect(a, b"49FROM_B")
        async with http.ws_connect("/terminals/shared") as late:
            scrollback = await expect(late, b"49FROM_B")
            assert b"42MARK" in scrollback
            assert (await terminals(http))["shared"]["clients"] == 3
        await a.send_json({"type": "resize", "rows": 40, "cols": 100})
        await typed(a, "stty size\r")
        await expect(b, b"40 100")
    # Every client gone: the shell lives on, and a new client gets the screen back.
    await until(lambda: _clients(http, "shared", 0))
    async with http.ws_connect("/terminals/shared") as again:
        await expect(again, b"40 100")
        await typed(again, "exit 3\r")
        exit_message = await _exit_message(again)
        assert exit_message == {"type": "exit", "code": 3}
        assert (await again.receive(timeout=5)).type in _CLOSED
    assert "shared" not in await terminals(http)


async def test_kill_and_no_secrets(http: aiohttp.ClientSession, agent: AgentProcess) -> None:
    async with http.ws_connect("/terminals/k.1") as ws:
        await typed(ws, f"echo SECRETS$(env | grep -c -e {agent.token} -e hub-secret)END\r")
        await expect(ws, b"SECRETS0END")
        await typed(ws, "echo $TERM $((1+1))\r")
        await expect(ws, b"xterm-256color 2")
        await typed(ws, "sleep 300 &\r")  # a job in a process group of its own
        await typed(ws, "echo JOB$((0+$!))END\r")
        output = b""
        while not (found := re.search(rb"JOB(\d+)END", output)):
            output += await expect(ws, b"END")
        job = int(found.group(1))
        shell = (await terminals(http))["k.1"]["pid"]
        async with http.delete("/terminals/k.1") as r:
            assert r.status == 200 and (await r.json())["exit_code"] is not None
        assert (await _exit_message(ws))["type"] == "exit"
    assert "k.1" not in await terminals(http)
    assert not alive(shell)
    await until(lambda: not alive(job))
    async with http.delete("/terminals/k.1") as r:
        assert r.status == 404


async def test_bad_names_and_messages(http: aiohttp.ClientSession) -> None:
    for name in ("has space", "x" * 65, "dollar$", ".."):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with http.ws_connect(f"/terminals/{name}"):
                pass
        assert info.value.status in (400, 404), name
    async with http.ws_connect("/terminals/msgs") as ws:
        for bad in ("not json", "[]", '{"type":"resize","rows":0,"cols":80}', '{"type":"x"}'):
            await ws.send_str(bad)
            while (msg := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
                pass  # the prompt
            assert json.loads(msg.data)["type"] == "error"
        await ws.send_bytes(b"echo RAW$((2+3))\r")  # binary frames are raw input
        await expect(ws, b"RAW5")
    async with http.delete("/terminals/msgs") as r:
        assert r.status == 200


async def test_sigterm_stops_terminals(tmp_path: Path) -> None:
    agent = start_agent(tmp_path)
    try:
        async with (
            aiohttp.ClientSession(agent.url, headers=agent.headers) as http,
            http.ws_connect("/terminals/t") as ws,
        ):
            await typed(ws, "echo READY$((1+2))\r")
            await expect(ws, b"READY3")
            shell = (await terminals(http))["t"]["pid"]
            agent.process.send_signal(signal.SIGTERM)
            assert (await _exit_message(ws))["type"] == "exit"
            await asyncio.to_thread(agent.process.wait, 10)
            assert agent.process.returncode == 0
            assert not alive(shell)
    finally:
        agent.stop()


_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


async def _exit_message(ws: Socket) -> dict[str, Any]:
    """Skip output up to the exit message."""
    while True:
        msg = await ws.receive(timeout=10)
        assert msg.type not in _CLOSED, "closed without an exit message"
        if msg.type == aiohttp.WSMsgType.TEXT:
            return dict(json.loads(msg.data))


async def _clients(http: aiohttp.ClientSession, name: str, count: int) -> bool:
    return bool((await terminals(http))[name]["clients"] == count)


async def _value(result: Any) -> bool:
    return bool(await result if inspect.isawaitable(result) else result)
