"""Who listens on a local TCP port (Linux), so that the local backend's proxy never takes a
user to a server that is not their project's: every project shares the machine's
loopback, where the hub, other projects' Jupyter servers and their agents also listen."""

from __future__ import annotations

from pathlib import Path

import psutil

_LISTEN = "0A"


def listener_uids(port: int, proc: Path = Path("/proc/net")) -> set[int]:
    """The uids of the sockets listening on `port` (IPv4 and IPv6), from /proc/net/tcp*."""
    uids: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            listening = len(fields) > 7 and fields[3] == _LISTEN
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                uids.add(int(fields[7]))
    return uids


def listener_pids(port: int) -> set[int]:
    """The pids listening on `port` (those the hub may see: its own user's)."""
    return {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }


def tree_pids(root: int) -> set[int]:
    try:
        process = psutil.Process(root)
        return {root, *(child.pid for child in process.children(recursive=True))}
    except psutil.Error:
        return set()
