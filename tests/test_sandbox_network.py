"""A sandboxed project's network (hub as root): with network allowed by its quota it has an
interface and a default route (slirp4netns), the private ranges are routed to nowhere, and
the host's loopback stays unreachable; without, it has its loopback only. No traffic leaves
this machine: the only addresses tried are the host's loopback and slirp4netns's own
gateway, which would lead there."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.backends.base import ProjectSpec
from cocalc_k8s.backends.local import LocalBackend
from cocalc_k8s.backends.network import (
    blocked_routes,
    route_batch,
    route_command,
    slirp_command,
)
from cocalc_k8s.core.quotas import Quota
from tests.conftest import sign_up
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project
from tests.test_sandbox_isolation import run

pytestmark = pytest.mark.timeout(120)

# The namespace's routes, from /proc/net/route: (destination, flags) per line.
ROUTES = (
    'python3 -c "import sys; [print(f[1], f[3]) for f in '
    "(l.split() for l in open('/proc/net/route').read().splitlines()[1:])]\""
)
RTF_REJECT = 0x0200


def test_blocked_routes_cover_private_ranges_and_the_host_addresses() -> None:
    routes = blocked_routes(["127.0.0.1", "192.0.2.7", "not an address", "::1"])
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(routes)
    assert "192.0.2.7/32" in routes and not any(r.startswith("127.") for r in routes)
    assert route_batch(["10.0.0.0/8"]) == b"route add unreachable 10.0.0.0/8\n"
    command = slirp_command("/proc/self/fd/5", 7, userns=None)
    assert command[0] == "slirp4netns"
    assert "--disable-host-loopback" in command and "--ready-fd=7" in command
    assert command[-3:] == ["--netns-type=path", "/proc/self/fd/5", "tap0"]
    # A hub that is not root: both run as root of the user namespace owning the network's.
    rootless = slirp_command("/proc/self/fd/5", 7, userns="/proc/self/fd/6")
    assert rootless[:3] == ["nsenter", "--preserve-credentials", "--user=/proc/self/fd/6"]
    assert route_command("/proc/self/fd/5", userns="/proc/self/fd/6")[3:] == [
        "nsenter", "--net=/proc/self/fd/5", "ip", "-batch", "-",
    ]  # fmt: skip


@pytest.fixture
def host_server() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="a root hub gives projects network")
async def test_network_when_the_quota_allows_it_and_never_the_hosts_loopback(
    make_client: Any, host_server: int
) -> None:
    client = await make_client(first_account_admin=True)
    admin = User(client, await sign_up(client))
    # Projects of other tests in this worker may still be running: count only this test's.
    others = set(_network_helpers())
    online, offline = await new_project(admin, "online"), await new_project(admin, "offline")
    status, body = await admin.call(
        "PATCH", f"/api/v2/projects/{offline}", {"quota": {"network": False}}
    )
    assert status == 200, body
    for project_id in (online, offline):
        await admin.call("POST", f"/api/v2/projects/{project_id}/start")
        await wait_state(admin, project_id, "running")

    devices = (await run(admin, online, "cat /proc/net/dev"))["stdout"]
    assert "tap0:" in devices and "lo:" in devices
    routes = [line.split() for line in (await run(admin, online, ROUTES))["stdout"].splitlines()]
    assert any(dest == "00000000" and not int(flags, 16) & RTF_REJECT for dest, flags in routes)
    rejected = {dest for dest, flags in routes if int(flags, 16) & RTF_REJECT}
    assert "0000A8C0" in rejected and "0000000A" in rejected  # 192.168/16, 10/8

    devices = (await run(admin, offline, "cat /proc/net/dev"))["stdout"]
    assert "lo:" in devices and "tap0" not in devices

    for project_id in (online, offline):
        for host in ("127.0.0.1", "10.0.2.2"):  # slirp4netns's gateway: not to the host
            connect = (
                f'python3 -c \'import socket; socket.create_connection(("{host}", '
                f"{host_server}), 2)'"
            )
            body = await run(admin, project_id, connect)
            assert body["exit_code"] != 0, (project_id, host, body)
    assert len(set(_network_helpers()) - others) == 1
    for project_id in (online, offline):
        await admin.call("POST", f"/api/v2/projects/{project_id}/stop")
        await wait_state(admin, project_id, "stopped")
    assert not set(_network_helpers()) - others  # stop ends slirp4netns with the namespace


@pytest.mark.skipif(os.geteuid() != 0, reason="a root hub gives projects network")
async def test_a_start_cancelled_while_the_network_is_made_leaves_no_helper(
    tmp_path: Path,
) -> None:
    # slirp4netns holds the project's network namespace open: one a cancelled start (a
    # stop during the start, a hub shutting down) forgot would run forever.
    backend = LocalBackend(log_dir=tmp_path / "logs", sandbox=True)
    others = set(_network_helpers())
    spec = ProjectSpec(
        project_id=uuid.uuid4(),
        home=tmp_path / "home",
        quota=Quota(network=True),
        uid=2_000_301 if backend.wants_uid else None,
    )
    start = asyncio.create_task(backend.start(spec, lambda message, percent: None))
    deadline = time.monotonic() + 30
    while not set(_network_helpers()) - others and not start.done():
        assert time.monotonic() < deadline, "no network helper started"
        await asyncio.sleep(0.002)
    start.cancel()  # while the helper is being attached (or just after the start)
    with contextlib.suppress(asyncio.CancelledError):
        await start
    await backend.stop(spec.project_id)
    await backend.close()
    assert not set(_network_helpers()) - others


def _network_helpers() -> list[int]:
    """The slirp4netns processes this hub started (its children)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                stat = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if cmdline[0].endswith(b"slirp4netns") and int(stat[1]) == os.getpid():
                found.append(int(entry))
    return found
