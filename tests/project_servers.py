"""Web servers run as a project's own user, as a user of the project would run them.

The local backend's proxy only forwards to ports whose listener runs as the project's
user, so a test server must too (which needs the tests to run as root)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_as(uid: int, factory: str) -> Iterator[int]:
    """Run `module:function` (an aiohttp app factory) on a free port as `uid`."""
    if os.geteuid() != 0:
        pytest.skip("running a server as a project's user needs root")
    module, function = factory.split(":")
    port = free_port()
    code = (
        f"from aiohttp import web; from {module} import {function}; "
        f"web.run_app({function}(), host='127.0.0.1', port={port}, print=None)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "HOME": "/tmp"},
        user=uid,
        group=uid,
        extra_groups=[],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "the project's server exited"
                assert time.monotonic() < deadline, "the project's server did not listen"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


async def project_uid(user: object, project_id: str) -> int:
    """The project's own uid, asked of the project itself."""
    status, body = await user.call(  # type: ignore[attr-defined]
        "POST", f"/api/v2/projects/{project_id}/exec", {"command": "id -u"}
    )
    assert status == 200, body
    return int(body["stdout"])
