"""Web servers run inside a project, on its own loopback (a sandboxed project's network
namespace is its own: the hub reaches the server through the project's agent).

The server is started in the project's network namespace with `nsenter` (which needs the
tests to run as root); it runs the test module's app factory from this repository, which
the project itself cannot see."""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.keys import LIFECYCLE

REPO = Path(__file__).resolve().parent.parent


def sandbox_pid(user: Any, project_id: str) -> int:
    """The host pid of the running project's sandbox PID 1."""
    backend = user.client.app[LIFECYCLE].backend
    pid = backend.sandbox_pid(uuid.UUID(project_id))
    assert pid is not None, "the project is not running in a sandbox"
    return int(pid)


@contextmanager
def served_in(user: Any, project_id: str, factory: str) -> Iterator[int]:
    """Run `module:function` (an aiohttp app factory) on a port of the project's loopback."""
    if os.geteuid() != 0:
        pytest.skip("entering a project's network namespace needs root")
    module, function = factory.split(":")
    port = random.randint(20000, 60000)  # the project's loopback is empty: no collision
    code = (
        f"from aiohttp import web; from {module} import {function}; "
        f"web.run_app({function}(), host='127.0.0.1', port={port}, "
        "print=lambda _: print('ready', flush=True))"
    )
    pid = sandbox_pid(user, project_id)
    process = subprocess.Popen(
        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", code],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "HOME": "/tmp"},
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        # Importing the test module (the hub's whole package) is slow on a loaded machine.
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready and process.stdout.readline() == b"ready\n", "the server did not listen"
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
