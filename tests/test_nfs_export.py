"""The NFS export of the hub pod (docker/ganesha.conf), run for real: nfs-ganesha serves a
data directory laid out like the hub's volume, and libnfs's client (nfs-ls, nfs-cp, as a
project pod's kernel would over NFSv4) sees the projects and /ext, and nothing else of
the hub's data.

Needs root (skipped otherwise), nfs-ganesha and libnfs-utils (scripts/test.sh installs
them when run as root); skipped without them, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "docker" / "ganesha.conf"
PROJECT = "0b6c1a52-8c4c-4e44-9a8e-3b6d2f1f9d10"
START_TIMEOUT = 30.0


def _missing() -> str | None:
    for tool in ("ganesha.nfsd", "nfs-ls", "nfs-cp"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nfs(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(URL prefix for libnfs, the data directory) of a running nfs-ganesha."""
    if os.geteuid() != 0:
        pytest.skip("nfs-ganesha needs root")
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the NFS test needs nfs-ganesha under CI: {missing}")
        pytest.skip(missing)
    data = tmp_path / "data"
    (data / "projects" / PROJECT).mkdir(parents=True)
    (data / "ext" / "bin").mkdir(parents=True)
    (data / "projects" / PROJECT / "notes.txt").write_text("in the project\n")
    (data / "hub.key").write_text("the hub's secret\n")  # like the database and keys
    port = _free_port()
    config = CONFIG.read_text()
    assert "Path = /data/projects;" in config and "NFS_Port = 2049;" in config
    config = (
        config.replace("Path = /data/projects;", f"Path = {data}/projects;")
        .replace("Path = /data/ext;", f"Path = {data}/ext;")
        .replace("NFS_Port = 2049;", f"NFS_Port = {port};")
    )
    (tmp_path / "ganesha.conf").write_text(config)
    log = tmp_path / "ganesha.log"
    command = ["ganesha.nfsd", "-F", "-f", str(tmp_path / "ganesha.conf"), "-L", str(log)]
    server = subprocess.Popen(
        [*command, "-p", str(tmp_path / "ganesha.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, f"nfs-ganesha exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "nfs-ganesha did not listen in time"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"nfs://127.0.0.1/{{}}?version=4&nfsport={port}", data
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _nfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def _names(listing: str) -> set[str]:
    return {line.split()[-1] for line in listing.splitlines() if line.strip()}


def test_projects_and_ext_are_exported_and_nothing_else(
    nfs: tuple[str, Path], tmp_path: Path
) -> None:
    url, data = nfs
    root = _nfs("nfs-ls", url.format(""))
    assert root.returncode == 0, root.stderr
    assert _names(root.stdout) == {"projects", "ext"}  # not hub.key, not the database

    home = _nfs("nfs-ls", url.format(f"projects/{PROJECT}"))
    assert home.returncode == 0, home.stderr
    assert _names(home.stdout) == {"notes.txt"}

    # Read and write as a project pod does.
    copy = tmp_path / "copy.txt"
    read = _nfs("nfs-cp", url.format(f"projects/{PROJECT}/notes.txt"), str(copy))
    assert read.returncode == 0, read.stderr
    assert copy.read_text() == "in the project\n"
    source = tmp_path / "from-pod.txt"
    source.write_text("written by the pod\n")
    write = _nfs("nfs-cp", str(source), url.format(f"projects/{PROJECT}/from-pod.txt"))
    assert write.returncode == 0, write.stderr
    assert (data / "projects" / PROJECT / "from-pod.txt").read_text() == "written by the pod\n"

    # The hub's own files are not reachable by name either.
    for hidden in ("hub.key", "data/hub.key", "projects/../hub.key"):
        attempt = _nfs("nfs-cp", url.format(hidden), str(tmp_path / "stolen"))
        assert attempt.returncode != 0, hidden
        assert not (tmp_path / "stolen").exists()
