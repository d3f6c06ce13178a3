"""The NFS export of the hub pod (docker/ganesha.conf rendered by docker/nfs-start.sh),
run for real: nfs-ganesha serves a data directory laid out like the hub's volume, and
libnfs's client (nfs-ls, nfs-cp, as a project pod's kernel would over NFSv4) sees the
projects and /ext, and nothing else of the hub's data; a client's root acts as the
projects' uid; a client outside COCALC_NFS_CLIENTS is refused.

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
START = ROOT / "docker" / "nfs-start.sh"
PROJECT = "0b6c1a52-8c4c-4e44-9a8e-3b6d2f1f9d10"
START_TIMEOUT = 30.0
UID = 2001


def _missing() -> str | None:
    for tool in ("ganesha.nfsd", "nfs-ls", "nfs-cp"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render(clients: str) -> subprocess.CompletedProcess[str]:
    """docker/nfs-start.sh --render, as the nfs container runs it."""
    env = {"PATH": os.environ["PATH"], "GANESHA_TEMPLATE": str(CONFIG)}
    env["COCALC_NFS_CLIENTS"] = clients
    return subprocess.run(
        ["sh", str(START), "--render"], env=env, capture_output=True, text=True, timeout=10
    )


@pytest.fixture
def clients() -> str:
    """COCALC_NFS_CLIENTS of the server; overridden by parametrize."""
    return "127.0.0.0/8"


@pytest.fixture
def nfs(tmp_path: Path, clients: str) -> Iterator[tuple[str, Path]]:
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
    for directory in (data / "projects", data / "projects" / PROJECT, data / "ext"):
        os.chown(directory, UID, UID)  # as nfs-start.sh and the hub make them
    (data / "projects" / PROJECT / "notes.txt").write_text("in the project\n")
    (data / "hub.key").write_text("the hub's secret\n")  # like the database and keys
    port = _free_port()
    rendered = render(clients)
    assert rendered.returncode == 0, rendered.stderr
    config = rendered.stdout
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


def test_a_clients_root_acts_as_the_projects_uid(nfs: tuple[str, Path], tmp_path: Path) -> None:
    url, data = nfs
    home = data / "projects" / PROJECT
    as_root = url + "&uid=0&gid=0"
    source = tmp_path / "from-root.txt"
    source.write_text("written as root on a node\n")
    write = _nfs("nfs-cp", str(source), as_root.format(f"projects/{PROJECT}/by-root.txt"))
    assert write.returncode == 0, write.stderr
    owner = (home / "by-root.txt").stat()
    assert (owner.st_uid, owner.st_gid) == (UID, UID)  # not 0:0

    # What only root may read on the server stays unreadable to a client's root.
    secret = home / "root-only.txt"
    secret.write_text("root's\n")
    secret.chmod(0o600)
    os.chown(secret, 0, 0)
    stolen = tmp_path / "stolen"
    read = _nfs("nfs-cp", as_root.format(f"projects/{PROJECT}/root-only.txt"), str(stolen))
    assert read.returncode != 0
    assert not stolen.exists() or stolen.read_text() == ""


@pytest.mark.parametrize("clients", ["192.0.2.0/24,2001:db8::/32"])
def test_a_client_outside_the_list_is_refused(nfs: tuple[str, Path]) -> None:
    url, _ = nfs
    listing = _nfs("nfs-ls", url.format(f"projects/{PROJECT}"))
    assert listing.returncode != 0
    assert "notes.txt" not in listing.stdout


@pytest.mark.parametrize(
    "clients",
    ["", "10.0.0.0/8;}", "10.0.0.0/8,,10.1.0.0/16", "10.0.0.0/8,", "nodes.example.org"],
)
def test_the_start_script_refuses_a_missing_or_malformed_client_list(clients: str) -> None:
    rendered = render(clients)
    assert rendered.returncode == 2
    assert "COCALC_NFS_CLIENTS" in rendered.stderr
    assert rendered.stdout == ""


def test_the_start_script_renders_every_export_for_the_clients() -> None:
    rendered = render(" 10.0.0.0/16, fd00:1::/64")
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.count("Clients = 10.0.0.0/16,fd00:1::/64;") == 2
    assert rendered.stdout.count("EXPORT {") == 2
    assert "Access_Type = None;" in rendered.stdout
    assert "Squash = All_Squash;" in rendered.stdout
    assert f"Anonymous_Uid = {UID};" in rendered.stdout
    assert "@" not in rendered.stdout
