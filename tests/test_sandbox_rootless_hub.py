"""The whole hub run by a normal user (`tester`: `cocalc-k8s serve`, its embedded
PostgreSQL, its data directory), as the one-command install runs it: two accounts, a
project each, and what the issue tried from a project (read ``~/../../secret_key``, reach
PostgreSQL's socket) fails, as does reading the other project, its agent log or its
processes; stopping and deleting leave nothing running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_sandbox_rootless import ENV, REPO, as_tester, tester_root  # noqa: F401

pytestmark = pytest.mark.timeout(240)
DEADLINE = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Api:
    """JSON over HTTP to the hub, as one account (cookie and CSRF token)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.headers: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **self.headers},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                data = response.read()
                status = response.status
                cookie = response.headers.get("Set-Cookie", "")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        if cookie and "Cookie" not in self.headers:
            self.headers["Cookie"] = cookie.split(";")[0]
        return status, json.loads(data) if data else None

    def sign_up(self, email: str) -> None:
        status, user = self.call(
            "POST",
            "/api/v2/auth/sign-up",
            {"email": email, "password": "a long password", "name": email.split("@")[0]},
        )
        assert status in (200, 201), user
        self.headers["X-CSRF-Token"] = user["csrf_token"]

    def running_project(self, title: str) -> str:
        status, project = self.call("POST", "/api/v2/projects", {"title": title})
        assert status == 201, project
        project_id = str(project["project_id"])
        assert self.call("POST", f"/api/v2/projects/{project_id}/start")[0] == 202
        deadline = time.monotonic() + DEADLINE
        while self.call("GET", f"/api/v2/projects/{project_id}")[1]["state"] != "running":
            assert time.monotonic() < deadline, "the project did not start"
            time.sleep(0.05)  # a poll interval
        return project_id

    def exec(self, project_id: str, command: str) -> dict[str, Any]:
        status, body = self.call(
            "POST", f"/api/v2/projects/{project_id}/exec", {"command": command, "timeout": 30}
        )
        assert status == 200, body
        return dict(body)


@pytest.fixture
def rootless_hub(tester_root: Path) -> Iterator[tuple[str, Path]]:  # noqa: F811
    data = tester_root / "data"
    port = _free_port()
    argv = [
        sys.executable, "-m", "cocalc_k8s", "serve", "--data-dir", str(data),
        "--host", "127.0.0.1", "--port", str(port), "--content-port", str(_free_port()),
        "--ssh-port", "0",  # not the default 2222, which another hub may hold
    ]  # fmt: skip
    hub = subprocess.Popen(
        as_tester(tester_root, argv),
        cwd=REPO,
        env={**ENV, "COCALC_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            assert hub.poll() is None, hub.communicate()[1].decode()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the hub did not become ready"
                time.sleep(0.05)  # a poll interval
        yield base, data
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()


def _pid_namespaces_of(home: Path) -> set[str]:
    """The PID namespaces of the host's processes whose working directory is `home`."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == str(home):
                    found.add(os.readlink(f"/proc/{entry}/ns/pid"))
            except OSError:
                continue
    return found


def test_a_rootless_hub_keeps_its_data_and_its_projects_apart(
    rootless_hub: tuple[str, Path],
) -> None:
    base, data = rootless_hub
    alice, bob = Api(base), Api(base)
    alice.sign_up("alice@example.org")
    bob.sign_up("bob@example.org")
    a, b = alice.running_project("A"), bob.running_project("B")
    assert bob.exec(b, "echo secret > notes.txt")["exit_code"] == 0
    assert bob.exec(b, "setsid nohup sleep 1000 >/dev/null 2>&1 &")["exit_code"] == 0
    sockets = sorted((data / "postgres" / "run").glob(".s.PGSQL.*"))
    assert sockets and (data / "secret_key").exists()  # they are there, on the host
    pg = f"python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"{sockets[0]}\")'"
    for command in (
        "cat ~/../../secret_key",
        f"cat {data / 'secret_key'}",
        pg,
        f"ls {data / 'postgres'}",
        f"cat {data / 'projects' / b / 'notes.txt'}",
        f"cat {data / 'logs' / 'projects' / (b + '.log')}",
        "ls /proc | grep -c '^[0-9]' | grep -qv '^[0-9]$'",  # ten or more processes
        "cat /proc/*/cmdline | tr '\\0' ' ' | grep -q 'sleep 100[0]'",
    ):
        body = alice.exec(a, command)
        assert body["exit_code"] != 0, (command, body)
    assert alice.exec(a, "id -u")["stdout"].strip() == str(os.stat(data).st_uid)

    # Stop and delete: nothing of either project runs any more, daemons included.
    assert alice.exec(a, "setsid nohup sleep 1001 >/dev/null 2>&1 &")["exit_code"] == 0
    homes = {a: data / "projects" / a, b: data / "projects" / b}
    namespaces = {pid: _pid_namespaces_of(home) for pid, home in homes.items()}
    assert all(namespaces.values()), namespaces
    assert alice.call("POST", f"/api/v2/projects/{a}/stop")[0] == 202
    assert bob.call("DELETE", f"/api/v2/projects/{b}")[0] == 204
    deadline = time.monotonic() + DEADLINE
    while any(_pid_namespaces_of(home) for home in homes.values()):
        assert time.monotonic() < deadline, "processes of a stopped project still run"
        time.sleep(0.05)  # a poll interval
