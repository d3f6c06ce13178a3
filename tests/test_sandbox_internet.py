"""Internet for sandboxed projects whose quota allows network, with the hub as root and as
a normal user (`tester`): the internet is reachable, the host's loopback, the private
ranges and the host's own addresses are not, and ``pip install --user`` works.

No traffic leaves this machine, nor even the test's own network namespace: the backend
runs in a fresh one (`run_as_tester`), where "the internet" is TEST-NET-3
(203.0.113.0/24) routed to the namespace's own host (`ip route add local`), a private
address (10.77.0.1) and a public-looking one (198.51.100.1) are the host's own addresses,
and a package index serves one small wheel built here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.test_sandbox_rootless import run_as_tester, tester_root  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces for the test need root"),
]

INTERNET = "203.0.113.7"
SETUP = (
    "ip link set lo up && ip addr add 10.77.0.1/32 dev lo && "
    "ip addr add 198.51.100.1/32 dev lo && ip route add local 203.0.113.0/24 dev lo"
)

SCRIPT = r"""
import asyncio, functools, http.server, json, os, socket, sys, threading, uuid
from pathlib import Path
from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.backends.base import ProjectSpec
from cocalc_k8s.backends.local import LocalBackend
from cocalc_k8s.core.quotas import Quota

INTERNET = "203.0.113.7"

def listen(host):
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(16)
    return sock

async def main(root):
    listeners = {name: listen(host) for name, host in (
        ("loopback", "127.0.0.1"), ("private", "10.77.0.1"),
        ("host_public", "198.51.100.1"), ("any", "0.0.0.0"))}
    ports = {name: sock.getsockname()[1] for name, sock in listeners.items()}
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(root / "index"))
    web = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    backend = LocalBackend(log_dir=root / "logs" / "projects", sandbox=True)
    client = AgentClient()
    addresses = {}
    for uid, network in ((2_000_101, True), (2_000_102, False)):
        project_id = uuid.uuid4()
        spec = ProjectSpec(project_id=project_id, home=root / "projects" / str(project_id),
                           quota=Quota(network=network), uid=uid if backend.wants_uid else None)
        addresses[network] = await backend.start(spec, lambda message, percent: None)

    async def run(network, command, timeout=30):
        body = await client.call(addresses[network], "POST", "/exec", seconds=timeout + 10,
                                 body={"command": command, "timeout": timeout})
        return body["exit_code"], body["stdout"] + body["stderr"]

    connect = ("python3 -c 'import socket, sys; "
               "socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)'")
    targets = {
        "internet": (INTERNET, ports["any"]),
        "loopback": ("127.0.0.1", ports["loopback"]),
        "gateway_to_loopback": ("10.0.2.2", ports["loopback"]),
        "gateway_to_any": ("10.0.2.2", ports["any"]),
        "private": ("10.77.0.1", ports["private"]),
        "private_any": ("10.77.0.1", ports["any"]),
        "host_public": ("198.51.100.1", ports["host_public"]),
        "metadata": ("169.254.169.254", 80),
    }
    out = {"uid": os.getuid(), "project_uid": (await run(True, "id -u"))[1].strip()}
    # The project cannot lift its restrictions (no capability over its network namespace).
    out["route_change"] = (await run(True, "ip route del unreachable 10.0.0.0/8"))[0]
    out["new_namespace"] = (await run(True, "unshare --user --net true"))[0]
    for network in (True, False):
        out[f"connect_{network}"] = {
            name: (await run(network, f"{connect} {host} {port}"))[0]
            for name, (host, port) in targets.items()
        }
    index = f"http://{INTERNET}:{web.server_port}/simple/"
    # Debian's Python (the test runner's PATH may start with a virtualenv, whose pip
    # refuses --user: its user site is switched off).
    pip = ("/usr/bin/python3 -m pip install --user --no-cache-dir --disable-pip-version-check "
           f"--index-url {index} --trusted-host {INTERNET} cocalc-probe")
    out["pip"] = await run(True, pip, 120)
    answer = "/usr/bin/python3 -c 'import cocalc_probe; print(cocalc_probe.ANSWER)'"
    out["import"] = await run(True, f"cd /tmp && {answer}")
    offline = pip.replace("install", "install --retries 0 --timeout 3")
    out["offline_pip"] = await run(False, offline, 60)
    await backend.close()
    await client.close()
    web.shutdown()
    print(json.dumps(out))

asyncio.run(main(Path(sys.argv[1])))
"""


def probe_wheel() -> tuple[str, bytes]:
    """A pure-Python wheel, ``cocalc-probe`` 1.0, whose module says ``ANSWER = 42``."""
    name = "cocalc_probe-1.0-py3-none-any.whl"
    files = {
        "cocalc_probe/__init__.py": b"ANSWER = 42\n",
        "cocalc_probe-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: cocalc-probe\nVersion: 1.0\n"
        ),
        "cocalc_probe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(data)}")
    record.append("cocalc_probe-1.0.dist-info/RECORD,,")
    files["cocalc_probe-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name, buffer.getvalue()


def package_index(root: Path) -> None:
    """A PEP 503 simple index under `root`/index with the one wheel."""
    name, data = probe_wheel()
    project = root / "index" / "simple" / "cocalc-probe"
    project.mkdir(parents=True)
    (root / "index" / "files").mkdir()
    (root / "index" / "files" / name).write_bytes(data)
    (project / "index.html").write_text(f'<a href="../../files/{name}">{name}</a>\n')
    for path in (root / "index").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (root / "index").chmod(0o755)


@pytest.mark.parametrize("user", [None, "tester"], ids=["root", "rootless"])
def test_internet_but_not_the_host_nor_private_ranges(tester_root: Path, user: str | None) -> None:  # noqa: F811
    if user is None:  # a root hub's data directory is root's
        os.chown(tester_root, 0, 0)
    package_index(tester_root)
    out: dict[str, Any] = run_as_tester(tester_root, SCRIPT, user=user, setup=SETUP)
    assert (out["uid"] == 0) == (user is None)
    assert out["project_uid"] == ("2000101" if user is None else str(out["uid"]))
    # No user namespace of its own either (rootless: bubblewrap's --disable-userns; as
    # root: the seccomp filter), which would give it capabilities over a namespace.
    assert out["route_change"] != 0 and out["new_namespace"] != 0, out
    online, offline = out["connect_True"], out["connect_False"]
    assert online.pop("internet") == 0, out
    assert all(code != 0 for code in online.values()), out
    assert all(code != 0 for code in offline.values()), out
    code, text = out["pip"]
    assert code == 0, text
    assert out["import"] == [0, "42\n"], out
    assert "as the 'root' user" not in text
    assert out["offline_pip"][0] != 0, out
