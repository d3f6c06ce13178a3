"""SFTP is confined to the project's home: `..`, absolute paths, symlinks made in the project
or over SFTP itself, and links into another project's home lead nowhere outside it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.keys import FILES
from tests.ssh.conftest import SshUser, run
from tests.test_projects_api import new_project

pytestmark = pytest.mark.timeout(180)


async def sftp(user: SshUser, project: str, commands: str, tmp_path: Path) -> tuple[int, str]:
    batch = tmp_path / "batch"
    batch.write_text(commands)
    argv = ["sftp", "-P", str(user.port), *user.options(), "-b", str(batch)]
    result = await run([*argv, f"{project}@127.0.0.1"])
    return result.code, (result.stdout + result.stderr).decode(errors="replace")


async def test_no_path_leads_out_of_the_home(
    hub: Any, alice: SshUser, project: str, tmp_path: Path
) -> None:
    other = await new_project(alice.user, "other")
    secret = await alice.ssh(other, "echo other-secret > secret.txt; pwd")
    assert secret.code == 0
    root = hub.app[FILES].projects_root
    made = await alice.ssh(
        project,
        "echo mine > mine.txt; ln -s / rootlink; ln -s /etc/passwd pw; ln -s .. up; "
        f"ln -s {root}/{other}/secret.txt other; ln -s mine.txt good",
    )
    assert made.code == 0, made.stderr
    down = tmp_path / "down"
    down.mkdir()
    attempts = [
        "rootlink/etc/passwd",
        "pw",
        "up/etc/passwd",
        "other",
        "../../../../etc/passwd",
        "/../etc/passwd",
        f"{root}/{other}/secret.txt",
    ]
    commands = "".join(f"-get {path} {down}/{n}\n" for n, path in enumerate(attempts))
    commands += (
        f"cd ..\npwd\n-ls up/\n-symlink /etc/shadow s\n-get s {down}/s\nget good {down}/good\n"
    )
    code, output = await sftp(alice, project, commands, tmp_path)
    assert code == 0, output
    assert sorted(p.name for p in down.iterdir()) == ["good"]
    assert (down / "good").read_text() == "mine\n"
    assert "Remote working directory: /\n" in output
    # Nor can a file outside be written through a link, or the home be left by a rename:
    # ".." above the root is the root, as in a chroot.
    passwd = await asyncio.to_thread(Path("/etc/passwd").read_bytes)
    code, output = await sftp(
        alice, project, f"-put {down}/good pw\n-rename mine.txt ../escaped\n", tmp_path
    )
    assert code == 0, output
    assert await asyncio.to_thread(Path("/etc/passwd").read_bytes) == passwd
    assert not (root / "escaped").exists()
    listing = await alice.ssh(project, "ls")
    assert b"escaped" in listing.stdout and b"mine.txt" not in listing.stdout
    assert (await alice.ssh(other, "cat secret.txt")).stdout == b"other-secret\n"
