"""Internet access for a sandboxed local project whose quota allows network: a user-mode
network stack (`slirp4netns`) attached to the sandbox's network namespace, whoever runs the
hub.

What the project can reach then: the internet, through the host's sockets, with

- the host's loopback unreachable (``--disable-host-loopback``: the gateway 10.0.2.2 does
  not lead to the host's 127.0.0.1, where the hub, the database's clients and other
  projects' servers of unsandboxed hubs listen);
- private and link-local ranges (RFC 1918, CGNAT, 169.254/16 with the cloud metadata
  address) and the host's own addresses routed to nowhere inside the namespace
  (`blocked_routes`), set by the hub before the project runs anything but its agent; the
  project has no capability to change its routes;
- slirp4netns in a sandbox of its own (``--enable-sandbox``, ``--enable-seccomp``).

Hub as root: the namespace belongs to the hub's own user namespace, which slirp4netns and
``ip`` enter directly. Hub as a normal user: bubblewrap made the network namespace with a
user namespace of its own (in which the hub's uid is root; the project itself runs in a
nested one, with no capabilities), so both run in that user namespace (``nsenter
--preserve-credentials --user``), found from the network namespace (NS_GET_USERNS) and
passed as a descriptor: it holds no process to name it by.

Without network the namespace has its loopback only. (pasta, from passt, was the first
choice; as root it drops to ``nobody`` before it opens the namespace and then cannot.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
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
_NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1): the user namespace owning a namespace


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


def enter_userns(userns: str | None) -> list[str]:
    """The prefix that runs a command in the user namespace at path `userns` as its root
    (the hub's uid is mapped to root there), or nothing (pure)."""
    return [] if userns is None else ["nsenter", "--preserve-credentials", f"--user={userns}"]


def slirp_command(netns: str, ready_fd: int, *, userns: str | None) -> list[str]:
    """The slirp4netns command line for the network namespace at path `netns` (pure)."""
    return [
        *enter_userns(userns),
        SLIRP4NETNS, "--configure", "--mtu=65520", "--disable-host-loopback",
        "--enable-sandbox", "--enable-seccomp", f"--ready-fd={ready_fd}",
        "--netns-type=path", netns, "tap0",
    ]  # fmt: skip


def route_command(netns: str, *, userns: str | None) -> list[str]:
    """`ip` inside the network namespace at path `netns`, reading commands on stdin (pure)."""
    return [*enter_userns(userns), "nsenter", f"--net={netns}", "ip", "-batch", "-"]


def route_batch(routes: Sequence[str]) -> bytes:
    """The `ip -batch` input that routes each of `routes` to nowhere (pure)."""
    return "".join(f"route add unreachable {route}\n" for route in routes).encode()


def namespace_fds(pid: int) -> tuple[int, int | None]:
    """Descriptors of the network namespace of `pid` and of the user namespace owning it,
    None for the latter when that is the hub's own (blocking: /proc)."""
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        userns = fcntl.ioctl(netns, _NS_GET_USERNS)
    except OSError:
        os.close(netns)
        raise
    if os.fstat(userns).st_ino == os.stat("/proc/self/ns/user").st_ino:
        os.close(userns)
        return netns, None
    os.set_inheritable(userns, False)
    return netns, userns


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
    """Attach slirp4netns to the network namespace of `pid` (the sandbox's PID 1) and block
    the private ranges there; returns the running slirp4netns (kill it at stop; it also
    ends when the namespace does). NetworkError if either fails (the namespace then has
    its loopback only)."""
    reason = network_available()
    if reason is not None:
        raise NetworkError(f"no network for the project: {reason}")
    netns_fd, userns_fd = await asyncio.to_thread(namespace_fds, pid)
    fds = [netns_fd] if userns_fd is None else [netns_fd, userns_fd]
    netns = f"/proc/self/fd/{netns_fd}"
    userns = None if userns_fd is None else f"/proc/self/fd/{userns_fd}"
    try:
        process = await _start_slirp(netns, userns, fds)
        try:
            routes = blocked_routes(await asyncio.to_thread(host_addresses))
            done = await asyncio.create_subprocess_exec(
                *route_command(netns, userns=userns),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=fds,
            )
            _, err = await done.communicate(route_batch(routes))
        except BaseException:
            await _end_helper(process)
            raise
    finally:
        for fd in fds:
            os.close(fd)
    if done.returncode != 0:
        process.kill()
        await process.wait()
        message = err.decode("utf-8", "replace").strip()
        raise NetworkError(f"the project's network could not be restricted: {message}")
    return process


async def _start_slirp(
    netns: str, userns: str | None, fds: list[int]
) -> asyncio.subprocess.Process:
    """slirp4netns, once it says the namespace is configured."""
    ready_read, ready_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *slirp_command(netns, ready_write, userns=userns),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=[ready_write, *fds],
            # It outlives its namespace otherwise (it holds it open) if the hub dies.
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(ready_write)
    try:
        ready = await asyncio.wait_for(asyncio.to_thread(os.read, ready_read, 1), READY_TIMEOUT)
    except TimeoutError:
        ready = b""
    except BaseException:  # cancelled (the start was): it holds the namespace open
        await _end_helper(process)
        raise
    finally:
        os.close(ready_read)
    if ready != b"1":
        process.kill()
        _, err = await process.communicate()
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no reason given"]
        raise NetworkError(f"the project's network did not start: {last[0]}")
    return process


async def _end_helper(process: asyncio.subprocess.Process) -> None:
    """Kill a network helper that will not be handed over, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await asyncio.shield(process.wait())
