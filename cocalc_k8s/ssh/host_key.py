"""The SSH server's host key: generated once (ed25519) and kept, mode 0600, in the data
directory, so clients see the same key across restarts."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

FILE_NAME = "ssh_host_ed25519_key"


def load_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The key in `data_dir`, made on first use (blocking: call it off the event loop)."""
    path = data_dir / FILE_NAME
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another hub process made it meanwhile: use theirs
        return asyncssh.read_private_key(path)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    return key
