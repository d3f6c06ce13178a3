"""Two projects of two accounts on one hub (the test suite's, as root): each in its own
bubblewrap sandbox, neither can reach the other (home, /tmp, /dev/shm, loopback ports and
Jupyter, abstract Unix sockets, /proc/net, the agent's socket, processes and signals), the
hub's data or the host's loopback, and /sys is not there; stopping or deleting a project
leaves nothing of it running (daemons included)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.keys import LIFECYCLE
from tests.conftest import sign_up
from tests.test_exec_terminals import origin, read_until
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="the hub as root (see test_sandbox_rootless)"),
]


async def run(user: User, project_id: str, command: str) -> dict[str, Any]:
    status, body = await user.call(
        "POST", f"/api/v2/projects/{project_id}/exec", {"command": command, "timeout": 30}
    )
    assert status == 200, body
    return dict(body)


async def fails(user: User, project_id: str, command: str) -> None:
    body = await run(user, project_id, command)
    assert body["exit_code"] != 0, (command, body)


def namespace_members(pid_namespace: str) -> list[int]:
    """Every process of the host in that PID namespace."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == pid_namespace:
                    members.append(int(entry))
            except OSError:
                continue
    return members


def cmdlines(pid_namespace: str) -> list[bytes]:
    found = []
    for pid in namespace_members(pid_namespace):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError:
            continue
    return found


async def no_process_left(pid_namespace: str, seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while namespace_members(pid_namespace):  # noqa: ASYNC110 (/proc has no event)
            await asyncio.sleep(0.02)


def pid_namespace(user: User, project_id: str) -> str:
    backend = user.client.app[LIFECYCLE].backend
    pid = backend.sandbox_pid(uuid.UUID(project_id))
    assert pid is not None, "the project runs without a sandbox"
    return os.readlink(f"/proc/{pid}/ns/pid")


@pytest.fixture
async def two(make_client: Any) -> tuple[User, str, User, str]:
    client = await make_client()
    alice = User(client, await sign_up(client))
    bob_client = await make_client(same_hub_as=client)
    bob = User(bob_client, await sign_up(bob_client))
    a, b = await new_project(alice, "A"), await new_project(bob, "B")
    for user, project_id in ((alice, a), (bob, b)):
        await user.call("POST", f"/api/v2/projects/{project_id}/start")
        await wait_state(user, project_id, "running")
    return alice, a, bob, b


async def test_a_project_reaches_nothing_of_another_or_of_the_hub(
    two: tuple[User, str, User, str], tmp_path: Path, database_url: str
) -> None:
    alice, a, bob, b = two
    data = tmp_path / "data"
    bob_home = data / "projects" / b
    await run(bob, b, "echo secret > notes.txt; echo b > /tmp/b-tmp; echo b > /dev/shm/b-shm")
    assert (bob_home / "notes.txt").read_text() == "secret\n"
    # B serves a port on its loopback.
    serve = "python3 -m http.server 18765 --bind 127.0.0.1"
    await run(bob, b, f"setsid nohup {serve} >/dev/null 2>&1 &")
    probe = "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 18765), 2)'"
    async with asyncio.timeout(20):
        while (await run(bob, b, probe))["exit_code"] != 0:  # noqa: ASYNC110 (a poll)
            await asyncio.sleep(0.05)
    # B's abstract Unix socket, B's Jupyter (a shared network namespace would show both).
    abstract = (
        "python3 -c 'import socket, time; s = socket.socket(socket.AF_UNIX); "
        's.bind("\\0cocalc-b"); s.listen(); time.sleep(600)\''
    )
    await run(bob, b, f"setsid nohup {abstract} >/dev/null 2>&1 &")
    reach_abstract = (
        "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"\\0cocalc-b\")'"
    )
    async with asyncio.timeout(20):
        while (await run(bob, b, reach_abstract))["exit_code"] != 0:  # noqa: ASYNC110 (a poll)
            await asyncio.sleep(0.05)
    in_proc_net = "grep -q cocalc-b /proc/net/unix && grep -qi :494D /proc/net/tcp"
    assert (await run(bob, b, in_proc_net))["exit_code"] == 0  # B's own view shows both
    backend = bob.client.app[LIFECYCLE].backend
    b_agent = backend.address(uuid.UUID(b))
    assert b_agent is not None and b_agent.unix
    agents = AgentClient()
    try:
        jupyter = await agents.call(
            b_agent, "POST", "/servers/jupyter", body={"base_url": "/b/"}, seconds=90
        )
    finally:
        await agents.close()
    postgres_dir = psycopg.conninfo.conninfo_to_dict(database_url)["host"]
    hub_port = alice.client.make_url("/").port
    for command in (
        f"cat {bob_home / 'notes.txt'}",
        f"ls {bob_home}",
        f"cat {data / 'secret_key'}",
        f"ls {data}",
        f"ls {data / 'uploads'}",
        f"cat {data / 'logs' / 'projects' / (b + '.log')}",
        f"ls {postgres_dir}",
        f"ls {Path(str(postgres_dir)).parent}",
        "cat /tmp/b-tmp",
        "cat /dev/shm/b-shm",
        probe,  # B's port: A's loopback is its own
        probe.replace("18765", str(jupyter["port"])),  # B's Jupyter
        reach_abstract,
        in_proc_net.replace("&&", "||"),
        f"python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"{b_agent.unix}\")'",
        f"ls {Path(b_agent.unix).parent.parent}",  # the hub's directory of agent sockets
        "ls /sys/class/net",
        f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {hub_port}), 2)'",
    ):
        await fails(alice, a, command)
    # Only its own processes, and no signal reaches B's.
    body = await run(alice, a, "ls /proc | grep -c '^[0-9]'; cat /proc/*/cmdline | tr '\\0' ' '")
    count, cmdlines = body["stdout"].split("\n", 1)
    assert int(count) < 10, body
    assert b not in cmdlines and "http.server" not in cmdlines
    bob_pids = namespace_members(pid_namespace(bob, b))
    assert bob_pids
    for pid in bob_pids:
        await fails(alice, a, f"kill -0 {pid}")
    assert (await run(bob, b, probe))["exit_code"] == 0  # B's server still runs
    # The hub's logs of projects are its own.
    for log in (data / "logs" / "projects").iterdir():
        assert log.stat().st_mode & 0o777 == 0o600, log
    # The directories above the data dir kept their modes.
    assert os.stat("/root").st_mode & 0o777 == 0o700 or not str(data).startswith("/root")


async def test_stop_and_delete_leave_nothing_running(
    two: tuple[User, str, User, str],
) -> None:
    alice, a, bob, b = two
    # Daemons that leave every process group the agent knows: from exec and a terminal.
    await run(alice, a, "setsid nohup sleep 1000 >/dev/null 2>&1 &")
    url = f"/api/v2/projects/{a}/terminals/main"
    async with alice.client.ws_connect(url, headers={"Origin": origin(alice)}) as ws:
        command = "setsid nohup sleep 1001 >/dev/null 2>&1 & echo started-$((6*7))\r"
        await ws.send_str(json.dumps({"type": "input", "data": command}))
        await read_until(ws, b"started-42")
    namespace = pid_namespace(alice, a)
    daemons = {b"sleep\x001000\x00", b"sleep\x001001\x00"}
    async with asyncio.timeout(10):  # the terminal's job may not have reached exec yet
        while not daemons <= set(cmdlines(namespace)):  # noqa: ASYNC110 (/proc has no event)
            await asyncio.sleep(0.02)
    status, _ = await alice.call("POST", f"/api/v2/projects/{a}/stop")
    assert status in (200, 202)
    await wait_state(alice, a, "stopped")
    await no_process_left(namespace)
    # Delete a running project: nothing of it is left either.
    await run(bob, b, "setsid nohup sleep 1002 >/dev/null 2>&1 &")
    namespace = pid_namespace(bob, b)
    assert (await bob.call("DELETE", f"/api/v2/projects/{b}"))[0] == 204
    await no_process_left(namespace)


async def test_terminal_and_exec_run_as_the_project_in_its_home(
    two: tuple[User, str, User, str], tmp_path: Path
) -> None:
    alice, a, _, _ = two
    body = await run(alice, a, "pwd; id -un; hostname; ls /")
    lines = body["stdout"].split()
    assert lines[0] == str(tmp_path / "data" / "projects" / a)
    assert lines[1] == "user"
    assert lines[2].startswith("project-")
    root = set(lines[3:])
    assert {"usr", "etc", "tmp", "proc", "dev"} <= root
    assert not root & {"home", "var", "srv", "mnt", "boot"}  # nothing else of the host
