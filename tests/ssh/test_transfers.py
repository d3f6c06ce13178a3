"""Moving files with the real OpenSSH scp and sftp and with rsync over the gateway."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import psycopg
import pytest

from tests.ssh.conftest import SshUser, run

pytestmark = pytest.mark.timeout(180)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scp_argv(user: SshUser, *args: str) -> list[str]:
    return ["scp", "-q", "-P", str(user.port), *user.options(), *args]


async def test_scp_up_and_down_a_10_mb_file(alice: SshUser, project: str, tmp_path: Path) -> None:
    original = tmp_path / "big.bin"
    original.write_bytes(os.urandom(10 * 1024 * 1024))
    up = await run(scp_argv(alice, str(original), f"{project}@127.0.0.1:data/big.bin"))
    assert up.code != 0  # no such folder yet: a clear failure, not a file somewhere else
    assert (await alice.ssh(project, "mkdir data")).code == 0
    up = await run(scp_argv(alice, str(original), f"{project}@127.0.0.1:data/big.bin"))
    assert up.code == 0, up.stderr[-3000:]
    inside = await alice.ssh(project, "sha256sum data/big.bin")
    assert inside.stdout.split()[0].decode() == digest(original)
    copy = tmp_path / "copy.bin"
    down = await run(scp_argv(alice, f"{project}@127.0.0.1:data/big.bin", str(copy)))
    assert down.code == 0, down.stderr
    assert digest(copy) == digest(original)


async def test_sftp_put_ls_rename_rm(alice: SshUser, project: str, tmp_path: Path) -> None:
    local = tmp_path / "notes.txt"
    local.write_text("hello over sftp\n")
    batch = tmp_path / "batch"
    batch.write_text(
        f"put {local} notes.txt\nls -1\nrename notes.txt renamed.txt\nls -1\nmkdir dir\nrmdir dir\n"
    )
    argv = ["sftp", "-q", "-P", str(alice.port), *alice.options(), "-b", str(batch)]
    result = await run([*argv, f"{project}@127.0.0.1"])
    assert result.code == 0, result.stderr
    listed = result.stdout.decode()
    assert "notes.txt" in listed and "renamed.txt" in listed
    shown = await alice.ssh(project, "cat renamed.txt; ls")
    assert shown.stdout == b"hello over sftp\nrenamed.txt\n"
    batch.write_text("rm renamed.txt\n")
    assert (await run([*argv, f"{project}@127.0.0.1"])).code == 0
    assert (await alice.ssh(project, "ls")).stdout == b""


async def test_rsync_twice_transfers_nothing_the_second_time(
    alice: SshUser, project: str, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for number in range(100):
        (folder / f"file-{number:03}.txt").write_text(f"file {number}\n" * 50)
    argv = ["rsync", "-a", "--stats", "-e", alice.rsh(), f"{folder}/", f"{project}@127.0.0.1:copy/"]
    first = await run(argv)
    assert first.code == 0, first.stderr
    assert b"Number of regular files transferred: 100" in first.stdout
    second = await run(argv)
    assert second.code == 0, second.stderr
    assert b"Number of regular files transferred: 0" in second.stdout
    count = await alice.ssh(project, "ls copy | wc -l")
    assert count.stdout.strip() == b"100"


async def test_sftp_writes_count_against_the_disk_quota(
    alice: SshUser, project: str, tmp_path: Path, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:  # an admin's quota change, made directly
        conn.execute(
            "UPDATE projects SET quota = %s WHERE project_id = %s",
            (json.dumps({"disk_mb": 1}), project),
        )
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(os.urandom(100_000))
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    assert (await run(scp_argv(alice, str(small), f"{project}@127.0.0.1:small.bin"))).code == 0
    # The writes past the quota are refused (SSH_FX_NO_SPACE_ON_FILESYSTEM); OpenSSH's scp
    # 9.x does not always turn that into a failing exit code, so the disk use is checked.
    await run(scp_argv(alice, str(big), f"{project}@127.0.0.1:big.bin"))
    used = await alice.ssh(project, "du -k big.bin | cut -f1")
    assert int(used.stdout) <= 1024, used
