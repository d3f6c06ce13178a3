"""The local backend run by a normal user (`tester`): its projects share that user's uid,
so only the sandbox keeps them apart. Two projects (A with network, B without): A reaches
nothing of B (its home, its loopback ports and Jupyter, its abstract Unix sockets, its
entries in /proc/net, its agent's socket, its processes), of the hub's data directory or
of the host's loopback, and sees no /sys; B's Jupyter answers only with its token, A's
terminal works; stopping A leaves none of its processes.

The backend runs in a subprocess as `tester` (the suite itself runs as root), in a private
mount namespace where /root is a traversable tmpfs holding only /root/.pyenv, so that the
pyenv interpreter of this machine can be run by tester at all (nothing changes on the
host); the projects' sandboxes then bind it in as they would any interpreter.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
USER = "tester"

pytestmark = pytest.mark.timeout(180)

SCRIPT = r"""
import asyncio, json, os, socket, sys, time, uuid
from pathlib import Path
from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.backends.agent_connect import open_port
from cocalc_k8s.backends.base import ProjectSpec
from cocalc_k8s.backends.local import LocalBackend
from cocalc_k8s.core.quotas import Quota

def members(namespace):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
            except OSError:
                pass
    return found

async def main(root):
    (root / "secret_key").write_text("hub secret")
    (root / "secret_key").chmod(0o600)
    (root / "postgres" / "run").mkdir(parents=True)
    (root / "uploads").mkdir()
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen()
    host_port = host.getsockname()[1]
    backend = LocalBackend(log_dir=root / "logs" / "projects", sandbox=True)
    client = AgentClient()
    ids = {"a": uuid.uuid4(), "b": uuid.uuid4()}
    address = {}
    for name, project_id in ids.items():
        spec = ProjectSpec(project_id=project_id, home=root / "projects" / str(project_id),
                           quota=Quota(network=name == "a"))
        address[name] = await backend.start(spec, lambda message, percent: None)

    async def run(name, command):
        body = await client.call(address[name], "POST", "/exec",
                                 body={"command": command, "timeout": 20})
        return body["exit_code"], body["stdout"]

    out = {"hub_uid": os.getuid()}
    b_home = root / "projects" / str(ids["b"])
    await run("b", "echo secret > notes.txt")
    serve = "python3 -m http.server 18766 --bind 127.0.0.1"
    await run("b", f"setsid nohup {serve} >/dev/null 2>&1 &")
    probe = "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 18766), 2)'"
    deadline = time.monotonic() + 20
    while (await run("b", probe))[0] != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    out["b_serves"] = (await run("b", probe))[0] == 0
    # B's abstract Unix socket (a shared network namespace would show it to everyone).
    abstract = ("python3 -c 'import socket, time; s = socket.socket(socket.AF_UNIX); "
                "s.bind(\"\\0cocalc-b\"); s.listen(); time.sleep(600)'")
    await run("b", f"setsid nohup {abstract} >/dev/null 2>&1 &")
    reach_abstract = ("python3 -c 'import socket; "
                      "socket.socket(socket.AF_UNIX).connect(\"\\0cocalc-b\")'")
    deadline = time.monotonic() + 20
    while (await run("b", reach_abstract))[0] != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    out["b_abstract"] = (await run("b", reach_abstract))[0] == 0
    in_proc_net = "grep -q cocalc-b /proc/net/unix && grep -qi :494E /proc/net/tcp"
    out["b_sees_own"] = (await run("b", in_proc_net))[0]
    # B's Jupyter: through B's connect service with its token, refused without; not from A.
    jupyter = await client.call(address["b"], "POST", "/servers/jupyter",
                                body={"base_url": "/b/"}, seconds=90)

    async def status(token):
        sock = await open_port(address["b"].connect, address["b"].token, jupyter["port"])
        reader, writer = await asyncio.open_connection(sock=sock)
        auth = f"Authorization: token {token}\r\n" if token else ""
        request = f"GET /b/api/status HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        writer.write(request.encode())
        line = await reader.readline()
        writer.close()
        return int(line.split()[1])

    out["jupyter_with_token"] = await status(jupyter["token"])
    out["jupyter_without"] = await status("")
    # A's terminal works.
    ws = await client.terminal(address["a"], "main")
    await ws.send_str(json.dumps({"type": "input", "data": "echo term-$((6*7))\r"}))
    seen = b""
    async with asyncio.timeout(20):
        while b"term-42" not in seen:
            msg = await ws.receive()
            seen += msg.data if isinstance(msg.data, bytes) else b""
    out["a_terminal"] = True
    await ws.close()
    checks = {
        "b_home": f"cat {b_home / 'notes.txt'}",
        "secret_key": f"cat {root / 'secret_key'}",
        "postgres": f"ls {root / 'postgres' / 'run'}",
        "uploads": f"ls {root / 'uploads'}",
        "b_log": f"cat {root / 'logs' / 'projects' / (str(ids['b']) + '.log')}",
        "b_port": probe,
        "host_loopback": probe.replace("18766", str(host_port)),
        "b_jupyter": probe.replace("18766", str(jupyter["port"])),
        "b_abstract": reach_abstract,
        "b_in_proc_net": in_proc_net.replace("&&", "||"),
        "b_agent_socket": ("python3 -c 'import socket; "
                           f"socket.socket(socket.AF_UNIX).connect(\"{address['b'].unix}\")'"),
        "sys": "ls /sys/class/net",
        "hub_tmp": f"ls {address['b'].unix.rsplit('/', 2)[0]}",
    }
    out["a_exit_codes"] = {k: (await run("a", c))[0] for k, c in checks.items()}
    b_pids = members(os.readlink(f"/proc/{backend.sandbox_pid(ids['b'])}/ns/pid"))
    out["b_pids"] = b_pids
    out["a_kills_b"] = [(await run("a", f"kill -0 {pid}"))[0] for pid in b_pids]
    out["a_proc"] = (await run("a", "ls /proc | grep -c '^[0-9]'"))[1].strip()
    out["a_id"] = (await run("a", "id -u"))[1].strip()
    await run("a", "setsid nohup sleep 1000 >/dev/null 2>&1 &")
    namespace = os.readlink(f"/proc/{backend.sandbox_pid(ids['a'])}/ns/pid")
    out["a_before_stop"] = len(members(namespace))
    await backend.stop(ids["a"])
    deadline = time.monotonic() + 10
    while members(namespace) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    out["a_after_stop"] = len(members(namespace))
    logs = (root / "logs" / "projects").iterdir()
    out["log_modes"] = sorted({oct(p.stat().st_mode & 0o777) for p in logs})
    await backend.close()
    await client.close()
    print(json.dumps(out))

asyncio.run(main(Path(sys.argv[1])))
"""


@pytest.fixture
def tester_root() -> Iterator[Path]:
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no user {USER!r} on this machine")
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    root = Path(tempfile.mkdtemp(prefix="cocalc-rootless-"))
    os.chown(root, entry.pw_uid, entry.pw_gid)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def as_tester(
    root: Path, argv: list[str], *, user: str | None = USER, setup: str = ""
) -> list[str]:
    """The command line that runs `argv` as `user` (None: as root) in private namespaces
    (mount; network too with `setup`, shell commands run there as root first), where a
    pyenv interpreter under /root is traversable."""
    pyenv = Path("/root/.pyenv")
    inner = argv
    if user is not None:
        inner = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *inner]
    shell = f"{setup} && " if setup else ""
    if pyenv.is_dir() and user is not None:
        source = root / ".pyenv-source"
        source.mkdir()
        shell += (
            f"mount --bind {pyenv} {source} && mount -t tmpfs -o mode=0755 tmpfs /root && "
            f"mkdir /root/.pyenv && mount --bind {source} /root/.pyenv && "
        )
    namespaces = ["--mount", "--propagation", "private", *(["--net"] if setup else [])]
    return ["unshare", *namespaces, "sh", "-c", shell + 'exec "$@"', "sh", *inner]


ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": "/tmp"}


def run_as_tester(
    root: Path, script: str = SCRIPT, *, user: str | None = USER, setup: str = ""
) -> dict[str, Any]:
    """Run `script` (argument: `root`) as `user` (None: as root), after the shell commands
    `setup` (see `as_tester`); its last line of output, JSON."""
    done = subprocess.run(
        as_tester(root, [sys.executable, "-c", script, str(root)], user=user, setup=setup),
        capture_output=True,
        timeout=150,
        cwd=REPO,
        env=ENV,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def test_projects_of_a_rootless_hub_are_kept_apart(tester_root: Path) -> None:
    out = run_as_tester(tester_root)
    tester = pwd.getpwnam(USER).pw_uid
    assert out["hub_uid"] == tester
    assert out["a_id"] == str(tester)  # the hub's uid: there is no other to have
    assert out["b_serves"] and out["b_abstract"], out
    assert out["b_sees_own"] == 0, out  # B's own /proc/net shows what A's must not
    assert out["jupyter_with_token"] == 200 and out["jupyter_without"] == 403, out
    assert out["a_terminal"]
    for check, code in out["a_exit_codes"].items():
        assert code != 0, (check, out)
    assert out["b_pids"] and all(code != 0 for code in out["a_kills_b"]), out
    assert int(out["a_proc"]) < 10, out
    assert out["a_before_stop"] >= 3, out  # PID 1, the agent, the daemon
    assert out["a_after_stop"] == 0, out
    assert out["log_modes"] == ["0o600"], out
