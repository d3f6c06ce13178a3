"""Internet access for a sandboxed local project whose quota allows network: a user-mode
network stack (`slirp4netns`) attached to the sandbox's network namespace.

What the project can reach then: the internet, through the host's sockets, with

- the host's loopback unreachable (``--disable-host-loopback``: the gateway 10.0.2.2 does
  not lead to the host's 127.0.0.1, where the hub, the database's clients and other
  projects' servers of unsandboxed hubs listen);
- private and link-local ranges (RFC 1918, CGNAT, 169.254/16 with the cloud metadata
  address) and the host's own addresses routed to nowhere inside the namespace
  (`blocked_routes`), set by the hub before the project runs anything but its agent; the
  project has no capability to change its routes;
- slirp4netns in a sandbox of its own (``--enable-sandbox``, ``--enable-seccomp``).

Without network the namespace has its loopback only. (pasta, from passt, was the first
choice; as root it drops to ``nobody`` before it opens the namespace and then cannot.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import shutil
import signal
import socket
from collections.abc import Iterable, Sequence

import psutil

SLIRP4NETNS = "slirp4netns"
_PR_SET_PDEATHSIG = 1
READY_TIMEOUT = 10.0
PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "192.0.0.0/24",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
# slirp4netns's own network inside the namespace: its virtual gateway and DNS forwarder.
SLIRP_CIDR = "10.0.2.0/24"


class NetworkError(Exception):
    """The network could not be given to a project (the message says why)."""


def blocked_routes(host_addresses: Iterable[str]) -> list[str]:
    """The destinations routed to nowhere inside a project's namespace (pure): the private
    ranges, and the host's own IPv4 addresses (the hub may listen on them)."""
    blocked = list(PRIVATE_RANGES)
    for text in host_addresses:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(text)
            if address.version == 4 and not address.is_loopback:
                route = f"{address}/32"
                if route not in blocked:
                    blocked.append(route)
    return blocked


def slirp_command(pid: int, ready_fd: int, *, userns: str | None) -> list[str]:
    """The slirp4netns command line for the namespace of `pid` (pure)."""
    args = [
        SLIRP4NETNS, "--configure", "--mtu=65520", "--disable-host-loopback",
        "--enable-sandbox", "--enable-seccomp", f"--ready-fd={ready_fd}",
    ]  # fmt: skip
    if userns is not None:
        args.append(f"--userns-path={userns}")
    return [*args, str(pid), "tap0"]


def route_command(pid: int) -> list[str]:
    """`ip` inside the network namespace of `pid`, reading commands on stdin (pure)."""
    return ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-batch", "-"]


def route_batch(routes: Sequence[str]) -> bytes:
    """The `ip -batch` input that routes each of `routes` to nowhere (pure)."""
    return "".join(f"route add unreachable {route}\n" for route in routes).encode()


def host_addresses() -> list[str]:
    return [
        addr.address
        for addrs in psutil.net_if_addrs().values()
        for addr in addrs
        if addr.family == socket.AF_INET
    ]


def _die_with_parent() -> None:  # pragma: no cover - in the child
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def network_available() -> str | None:
    """None when projects can be given network here, else the reason."""
    for program in (SLIRP4NETNS, "nsenter", "ip"):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian: slirp4netns, util-linux, iproute2)"
    return None


async def start_network(pid: int) -> asyncio.subprocess.Process:
    """Attach slirp4netns to the namespace of `pid` (the sandbox's PID 1) and block the
    private ranges there; returns the running slirp4netns (kill it at stop; it also ends
    when the namespace does). NetworkError if either fails (the namespace then has its
    loopback only). Needs root: a hub that is not root gets no network for its projects,
    whose network namespace belongs to a user namespace nested by bubblewrap, which
    neither slirp4netns nor nsenter can enter."""
    reason = network_available()
    if reason is not None:
        raise NetworkError(f"no network for the project: {reason}")
    ready_read, ready_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *slirp_command(pid, ready_write, userns=None),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=[ready_write],
            # It outlives its namespace otherwise (it holds it open) if the hub dies.
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(ready_write)
    try:
        ready = await asyncio.wait_for(asyncio.to_thread(os.read, ready_read, 1), READY_TIMEOUT)
    except TimeoutError:
        ready = b""
    finally:
        os.close(ready_read)
    if ready != b"1":
        process.kill()
        _, err = await process.communicate()
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no reason given"]
        raise NetworkError(f"the project's network did not start: {last[0]}")
    routes = blocked_routes(await asyncio.to_thread(host_addresses))
    done = await asyncio.create_subprocess_exec(
        *route_command(pid),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await done.communicate(route_batch(routes))
    if done.returncode != 0:
        process.kill()
        await process.wait()
        message = err.decode("utf-8", "replace").strip()
        raise NetworkError(f"the project's network could not be restricted: {message}")
    return process
