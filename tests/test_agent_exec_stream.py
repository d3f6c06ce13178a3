"""The agent's streamed exec (`/exec-stream`) on a real agent process: stdin to EOF, stdout
and stderr kept apart, exit codes and signals, a pty with its size, malformed starts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cocalc_k8s.agent.launch import AgentProcess, start_agent
from cocalc_k8s.agent.session_process import PtyRequest, SessionProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent-stream")


@pytest.fixture(scope="module")
def agent(home: Path) -> Iterator[AgentProcess]:
    process = start_agent(home)
    yield process
    assert process.stop() == 0


async def session(
    http: aiohttp.ClientSession, start: dict[str, Any], steps: list[Any]
) -> tuple[bytes, bytes, dict[str, Any]]:
    """Run one session: send `start`, then each step (bytes: stdin; dict: a control
    message); collect stdout, stderr and the final message."""
    out, err = bytearray(), bytearray()
    async with asyncio.timeout(20), http.ws_connect("/exec-stream") as ws:
        await ws.send_json(start)
        for step in steps:
            if isinstance(step, bytes):
                await ws.send_bytes(step)
            else:
                await ws.send_json(step)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                (out if msg.data[0] == 1 else err).extend(msg.data[1:])
            else:
                return bytes(out), bytes(err), json.loads(msg.data)
    raise AssertionError("no final message")


async def test_stdin_stdout_stderr_and_status(http: aiohttp.ClientSession) -> None:
    big = b"x" * (3 << 20)  # more than any pipe or frame holds at once
    out, err, final = await session(
        http,
        {"command": "wc -c; echo oops >&2; exit 4", "pty": None},
        [*(big[i : i + (512 << 10)] for i in range(0, len(big), 512 << 10)), {"type": "eof"}],
    )
    assert (out.strip(), err, final) == (b"3145728", b"oops\n", {"type": "exit", "code": 4})


async def test_signals_end_a_command(http: aiohttp.ClientSession) -> None:
    _, _, final = await session(
        http,
        {"command": "exec sleep 30", "pty": None},
        [{"type": "signal", "signal": "TERM"}],
    )
    assert final == {"type": "exit", "signal": "TERM"}


async def test_a_pty_with_its_size(http: aiohttp.ClientSession, agent: AgentProcess) -> None:
    out, err, final = await session(
        http,
        {"command": "stty size; tty; exit 2", "pty": {"term": "xterm", "rows": 33, "cols": 99}},
        [],
    )
    assert b"33 99" in out and b"/dev/pts/" in out and err == b""
    assert final == {"type": "exit", "code": 2}


@pytest.mark.parametrize(
    "start",
    [
        {"command": 5},
        {"command": "true", "pty": {"term": "xterm", "rows": 0, "cols": 80}},
        {"command": "true", "pty": "yes"},
        ["not", "an", "object"],
    ],
)
async def test_malformed_starts_are_refused(http: aiohttp.ClientSession, start: Any) -> None:
    async with asyncio.timeout(10), http.ws_connect("/exec-stream") as ws:
        await ws.send_json(start)
        answer = await ws.receive_json()
    assert answer["type"] == "error" and answer["message"]


async def test_the_token_is_required(agent: AgentProcess) -> None:
    async with aiohttp.ClientSession(agent.url) as anonymous:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await anonymous.ws_connect("/exec-stream")
    assert refused.value.status == 401


async def test_commands_run_in_the_home(http: aiohttp.ClientSession, home: Path) -> None:
    out, _, final = await session(http, {"command": "pwd", "pty": None}, [])
    assert out.strip().decode() == str(home) and final["code"] == 0


async def test_a_pty_keeps_the_output_of_a_command_that_has_ended(tmp_path: Path) -> None:
    # The output is read only after the pty said its last process had gone (as a loaded
    # machine schedules it): it was lost then, raised over as EIO.
    process = await SessionProcess.start(
        tmp_path, "echo the-output; exit 3", PtyRequest("xterm", 24, 80)
    )
    try:
        assert await process.wait() == 3
        stdout = process.stdout
        assert stdout is not None
        for _ in range(1000):  # until the reader has heard the end (10 s at most)
            if stdout._eof or stdout.exception() is not None:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the pty never ended")
        assert b"the-output" in await stdout.read()
    finally:
        process.close()
