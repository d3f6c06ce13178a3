"""The agent's settings: from arguments, except the token, which comes on a file descriptor
(stdin by default) so that it is in neither ``/proc/<pid>/cmdline`` nor ``environ``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIN_TOKEN_CHARS = 16


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    home: Path
    """The project's home directory: every file operation, command and terminal is in it."""
    token: str = field(repr=False)
    """The secret the hub sends as ``Authorization: Bearer <token>`` (never logged)."""
    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in a pod, reached only by the hub)."""
    port: int = 0
    """Port to listen on; 0 picks a free one (printed as ``{"port": N}`` on stdout)."""
    listen_fd: int | None = None
    """An inherited listening socket (a Unix socket of the hub's, for a sandboxed project)
    to serve on instead of host:port."""
    connect_fd: int | None = None
    """An inherited listening Unix socket for the connect service (`cocalc_k8s.agent.connect`):
    the hub's way to the ports on the project's own loopback."""
    max_upload_bytes: int = 1 << 30
    """Largest file accepted by ``PUT /files/…`` (413 beyond)."""
    exec_output_bytes: int = 1 << 20
    """Captured stdout and stderr of ``POST /exec``, each; the rest is dropped."""
    scrollback_bytes: int = 256 << 10
    """Terminal output kept per terminal and replayed to whoever joins."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cocalc_k8s.agent",
        description="The project agent. The token is read from --token-fd, or else as the "
        "first line of stdin; it is never accepted in arguments or the environment.",
    )
    parser.add_argument("--home", type=Path, required=True, help="the project's home")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument("--token-fd", type=int, help="read the token from this descriptor")
    parser.add_argument("--listen-fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument(
        "--connect-fd", type=int, help="serve the connect service on this inherited Unix socket"
    )
    parser.add_argument("--max-upload-bytes", type=int, default=1 << 30)
    parser.add_argument("--exec-output-bytes", type=int, default=1 << 20)
    parser.add_argument("--scrollback-bytes", type=int, default=256 << 10)
    return parser.parse_args(argv)


def read_token(fd: int) -> str:
    """The first line on ``fd``; the descriptor is then closed (stdin: replaced by
    /dev/null) so nothing else in the process can read it again."""
    data = bytearray()
    while not data.endswith(b"\n") and len(data) < 4096:
        chunk = os.read(fd, 1)  # byte by byte: nothing after the line is consumed
        if not chunk:
            break
        data += chunk
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, fd) if fd == 0 else os.close(fd)
    os.close(devnull)
    token = data.decode().strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise SystemExit(f"error: the token must have at least {MIN_TOKEN_CHARS} characters")
    return token


def settings_from_args(argv: Sequence[str] | None = None) -> AgentSettings:
    args = parse_args(argv)
    home = Path(os.path.abspath(args.home))
    if not home.is_dir():
        raise SystemExit(f"error: --home {home} is not a directory")
    return AgentSettings(
        home=home,
        token=read_token(0 if args.token_fd is None else args.token_fd),
        host=args.host,
        port=args.port,
        listen_fd=args.listen_fd,
        connect_fd=args.connect_fd,
        max_upload_bytes=args.max_upload_bytes,
        exec_output_bytes=args.exec_output_bytes,
        scrollback_bytes=args.scrollback_bytes,
    )
