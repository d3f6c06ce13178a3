"""The built images, run as containers: the hub image serves /readyz and a page; the project
image runs the agent as the pod runs it (uid 2001, no capabilities, no new privileges, a
read-only root with a tmpfs /tmp and the home mounted) and answers health."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.container.podman import LABEL, Images, limit_flags

pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]
UID = 2001
TOKEN = "container-test-token-" + "x" * 22


def _podman(command: list[str], *args: str) -> str:
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _address(command: list[str], name: str, port: int) -> str:
    """IP:port of the container on podman's bridge. Never a published port: podman
    publishes a port of 127.0.0.1 by a DNAT rule, without holding the port, so the
    kernel hands the same port to a server of a test running beside (the other test
    worker's hubs bind port 0), whose clients then reach the container instead, or
    nothing (EHOSTUNREACH) once it is gone."""
    ip = _podman(command, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)
    assert ip, f"{name} has no address on podman's bridge"
    return f"{ip}:{port}"


@pytest.fixture
def container_name(podman_command: list[str]) -> Iterator[str]:
    name = f"cocalc-test-{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run([*podman_command, "logs", name], timeout=60)  # shown when a test fails
    subprocess.run([*podman_command, "rm", "-f", "-t", "0", name], capture_output=True, timeout=60)


async def _until_answers(url: str, deadline: float, **kwargs: object) -> aiohttp.ClientResponse:
    async with asyncio.timeout(deadline), aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url, **kwargs) as resp:  # type: ignore[arg-type]
                    await resp.read()
                    if resp.status < 500:
                        return resp
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def test_the_hub_image_serves_readyz_and_a_page(
    images: Images, podman_command: list[str], container_name: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, UID, UID)  # the hub's volume belongs to the uid it runs as
    started = time.monotonic()
    _podman(
        podman_command, "run", "--detach", "--name", container_name, "--label", LABEL,
        *limit_flags(), "--volume", f"{data}:/data",
        images.hub, "serve", "--backend", "local",
    )  # fmt: skip
    hub = f"https://{_address(podman_command, container_name, 8443)}"
    ready = await _until_answers(f"{hub}/readyz", 120, ssl=False)  # a self-signed certificate
    print(f"hub container: /readyz {ready.status} after {time.monotonic() - started:.1f} s")
    assert ready.status == 200
    async with aiohttp.ClientSession() as http, http.get(f"{hub}/", ssl=False) as resp:
        page = await resp.text()
        assert resp.status == 200
        assert "<html" in page and "cocalc" in page.lower()
    assert _podman(podman_command, "exec", container_name, "id", "-u") == str(UID)
    assert (data / "secret_key").exists() or any(data.iterdir())  # it wrote its data there


async def test_the_project_image_runs_the_agent_as_the_pod_does(
    images: Images, podman_command: list[str], container_name: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, UID, UID)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    os.chown(token, 0, UID)  # as the Secret volume with fsGroup 2001 mounts it
    token.chmod(0o440)
    _podman(
        podman_command, "run", "--detach", "--name", container_name, "--label", LABEL,
        *limit_flags(), "--user", f"{UID}:{UID}", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--read-only", "--read-only-tmpfs=false",
        "--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777", "--volume", f"{home}:/home/user:rw",
        "--volume", f"{token}:/var/run/cocalc/token:ro",
        images.project,  # its own CMD: the agent, as cocalc_k8s.k8s.manifests runs it
    )  # fmt: skip
    agent = f"http://{_address(podman_command, container_name, 6000)}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    health = await _until_answers(f"{agent}/health", 60, headers=auth)
    assert health.status == 200
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{agent}/health") as resp:
            assert resp.status == 401  # the token is demanded
        script = (
            "id -u; id -G; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status;"
            " touch /usr/local/x 2>/dev/null || echo root-read-only;"
            " touch /tmp/t && echo tmp-writable; echo hi > ~/written && echo home-writable;"
            " jupyter lab --version"
        )
        async with http.post(f"{agent}/exec", json={"command": script}, headers=auth) as resp:
            result = await resp.json()
    assert resp.status == 200, result
    lines = result["stdout"].splitlines()
    assert lines[0] == str(UID)
    assert lines[1].split() == [str(UID)]
    assert "CapEff:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines
    assert {"root-read-only", "tmp-writable", "home-writable"} <= set(lines)
    assert lines[-1][0].isdigit(), result  # JupyterLab's version: it is installed
    assert (home / "written").read_text() == "hi\n"
    assert (home / "written").stat().st_uid == UID
