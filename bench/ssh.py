"""SSH through the hub's gateway against OpenSSH's own sshd, in the same run.

Starts `cocalc-k8s serve` with its SSH server on a free port (an account, a key added
through the API, a project) and Debian's `sshd` on another port (root's login with the
same key, no PAM), both on 127.0.0.1. Then, with the real OpenSSH client:

- scp of a file (256 MB by default) up to each, best of `--runs`: MB/s and the ratio;
- keystroke round trip in an interactive shell (pexpect: a character typed into
  `bash --norc -i`, timed until its echo comes back; then erased), p50/p99 and the ratio.

Machines here are noisy and have 2 cores shared by everyone: only ratios from the same
run mean much. Needs openssh-client and openssh-server (`apt-get install openssh-server`).

    python bench/ssh.py [--megabytes 256] [--runs 3] [--keystrokes 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hub import free_port, median, percentile, running_hub, sign_up

SSHD = "/usr/sbin/sshd"


def options(key: Path) -> list[str]:
    return [
        "-i", str(key), "-F", "/dev/null",
        "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
    ]  # fmt: skip


def api(base: str, method: str, path: str, body: dict[str, str], key: str) -> dict[str, str]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, str] = json.loads(response.read())
        return result


@contextlib.contextmanager
def local_sshd(folder: Path, public_key: str) -> Iterator[int]:
    """Debian's sshd on 127.0.0.1 (a free port), accepting `public_key` for this user."""
    port = free_port()
    host_key = folder / "sshd_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    authorized = folder / "authorized_keys"
    authorized.write_text(public_key)
    authorized.chmod(0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation directory
    process = subprocess.Popen(
        [
            SSHD,
            "-D",
            "-e",
            "-f",
            "/dev/null",
            "-h",
            str(host_key),
            "-p",
            str(port),
            "-o",
            "ListenAddress=127.0.0.1",
            "-o",
            f"AuthorizedKeysFile={authorized}",
            "-o",
            "PidFile=none",
            "-o",
            "StrictModes=no",
            "-o",
            "UsePAM=no",
            "-o",
            "PasswordAuthentication=no",
            "-o",
            "PermitRootLogin=prohibit-password",
            "-o",
            "Subsystem=sftp internal-sftp",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("sshd did not start")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait()


def scp_seconds(key: Path, port: int, source: Path, target: str, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(
            ["scp", "-q", "-P", str(port), *options(key), str(source), target], check=True
        )
        best = min(best, time.perf_counter() - began)
    return best


def keystrokes(key: Path, port: int, login: str, count: int) -> list[float]:
    """Seconds from a typed character to its echo, `count` times."""
    child = pexpect.spawn(
        "ssh", ["-tt", "-p", str(port), *options(key), login, "bash --norc -i"], timeout=30
    )
    child.delaybeforesend = None  # pexpect's default 50 ms pause before each send
    try:
        child.sendline("PS1='ready> '")
        child.expect("ready> ")
        samples = []
        for _ in range(count):
            began = time.perf_counter()
            child.send("a")
            child.expect("a")
            samples.append(time.perf_counter() - began)
            child.send("\x7f")  # erase it again, so the line never grows
            child.expect("\x08")
        child.sendline("exit")
        child.expect(pexpect.EOF)
        return samples
    finally:
        child.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keystrokes", type=int, default=200)
    args = parser.parse_args()
    if not (shutil.which("scp") and os.access(SSHD, os.X_OK)):
        sys.exit("needs openssh-client and openssh-server (apt-get install openssh-server)")
    with tempfile.TemporaryDirectory(prefix="cocalc-bench-ssh-") as tmp:
        folder = Path(tmp)
        key_path = folder / "id_bench"
        private = asyncssh.generate_private_key("ssh-ed25519")
        key_path.write_bytes(private.export_private_key())
        key_path.chmod(0o600)
        public = private.export_public_key().decode()
        payload = folder / "payload.bin"
        with payload.open("wb") as f:
            for _ in range(args.megabytes):
                f.write(os.urandom(1 << 20))
        gateway_port = free_port()
        with (
            running_hub("--ssh-port", str(gateway_port), "--content-port", "0") as hub,
            local_sshd(folder, public) as sshd,
        ):
            account = sign_up(hub.base)
            api(
                hub.base,
                "POST",
                "/api/v2/ssh-keys",
                {"name": "bench", "public_key": public},
                account.api_key,
            )
            project = api(
                hub.base, "POST", "/api/v2/projects", {"title": "bench"}, account.api_key
            )["project_id"]
            login = f"{project}@127.0.0.1"
            user = f"{os.environ.get('USER') or 'root'}@127.0.0.1"
            subprocess.run(
                ["ssh", "-p", str(gateway_port), *options(key_path), login, "true"], check=True
            )  # starts the project
            mb = args.megabytes
            through_gateway = scp_seconds(
                key_path, gateway_port, payload, f"{login}:payload.bin", args.runs
            )
            direct = scp_seconds(key_path, sshd, payload, f"{user}:{folder}/copy.bin", args.runs)
            print(
                f"scp {mb} MB up: gateway {mb / through_gateway:.1f} MB/s, "
                f"sshd {mb / direct:.1f} MB/s, ratio {through_gateway / direct:.2f}x the time"
            )
            gateway_keys = keystrokes(key_path, gateway_port, login, args.keystrokes)
            direct_keys = keystrokes(key_path, sshd, user, args.keystrokes)
            for name, samples in (("gateway", gateway_keys), ("sshd", direct_keys)):
                print(
                    f"keystroke echo {name}: p50 {median(samples) * 1000:.2f} ms, "
                    f"p99 {percentile(samples, 0.99) * 1000:.2f} ms"
                )
            print(f"keystroke p50 ratio {median(gateway_keys) / median(direct_keys):.2f}x")


if __name__ == "__main__":
    main()
