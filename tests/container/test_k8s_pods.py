"""The Kubernetes backend end to end with real containers: a hub with `--backend kubernetes`
against the emulated API server, whose kubelet (tests/container/kubelet.py) runs each pod
the hub creates as a container of the built project image, with the pod's securityContext,
limits and volumes. The project is used through the hub (files, exec), and JupyterLab
inside the container opens through the hub's proxy on the project's content origin."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.keys import CONTENT_ORIGINS
from tests.conftest import sign_up
from tests.container.kubelet import ContainerKubelet
from tests.container.podman import Images
from tests.k8s_emulator import KubernetesEmulator
from tests.localhost import localhost_session
from tests.test_k8s_backend import NS, emulator
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]
__all__ = ["emulator"]


@pytest.fixture
async def kubelet(
    emulator: KubernetesEmulator, podman_command: list[str], tmp_path: Path
) -> AsyncIterator[ContainerKubelet]:
    storage = tmp_path / "data"
    (storage / "ext").mkdir(parents=True)  # the export's /ext, as nfs-start.sh makes it
    kubelet = ContainerKubelet(emulator.store, storage, podman_command, NS)
    kubelet.start()
    yield kubelet
    await kubelet.close()
    assert kubelet.errors == [], "pods the kubelet could not run as specified"


@pytest.fixture
async def owner(
    make_client: Any, emulator: KubernetesEmulator, kubelet: ContainerKubelet, images: Images
) -> User:
    repository, tag = images.project.rsplit(":", 1)
    client = await make_client(
        backend="kubernetes", k8s_api_url=emulator.url, k8s_namespace=NS,
        k8s_start_timeout=120, k8s_project_image=repository, k8s_project_tag=tag,
    )  # fmt: skip
    return User(client, await sign_up(client))


async def _inspect(kubelet: ContainerKubelet, name: str) -> dict[str, Any]:
    inspected = json.loads(await kubelet.run_podman("inspect", name))
    return inspected[0]  # type: ignore[no-any-return]


async def _address(kubelet: ContainerKubelet, name: str) -> str:
    """The running container's IP. podman's inspect now and then showed an empty address
    for a container the kubelet had just read it from (once, in a full run on a loaded
    machine): read it again until it shows, and say the container's state if it never
    does."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        container = await _inspect(kubelet, name)
        address = str(container["NetworkSettings"]["IPAddress"])
        if address or asyncio.get_running_loop().time() > deadline:
            assert address, f"no IP address: {container['State']}"
            return address
        await asyncio.sleep(0.2)


async def test_a_project_pod_runs_as_a_container_of_the_project_image(
    owner: User, kubelet: ContainerKubelet, emulator: KubernetesEmulator
) -> None:
    project_id = await new_project(owner)
    status, _ = await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    assert status == 202
    await wait_state(owner, project_id, "running", deadline=120)
    name = f"project-{project_id}"
    container = await _inspect(kubelet, name)
    host = container["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert container["Config"]["User"] == "2001:2001"
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == 2000 * 2**20  # the default quota's limit
    pod = emulator.store.get("pods", NS, name)
    assert pod is not None and pod["status"]["podIP"] == await _address(kubelet, name)

    base = f"/api/v2/projects/{project_id}"
    resp = await owner.client.put(
        f"{base}/files/notes/hello.txt", data=b"hi container", headers=owner.headers
    )
    assert resp.status in (200, 201, 204), await resp.text()
    script = (
        "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat notes/hello.txt; echo;"
        " touch /usr/local/x 2>/dev/null || echo root-read-only; touch /tmp/t && echo tmp"
    )
    status, result = await owner.call("POST", f"{base}/exec", {"command": script})
    assert status == 200, result
    lines = result["stdout"].splitlines()
    assert lines[:4] == ["2001", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "hi container"]
    assert "root-read-only" in lines and "tmp" in lines

    status, _ = await owner.call("POST", f"{base}/stop")
    assert status == 202
    await wait_state(owner, project_id, "stopped", deadline=120)
    gone = await kubelet.run_podman("ps", "-aq", "--filter", f"name={name}")
    assert gone == ""


async def test_jupyterlab_in_the_pod_opens_through_the_proxy(
    owner: User, kubelet: ContainerKubelet
) -> None:
    project_id = await new_project(owner)
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "lab"})
    origin = owner.client.app[CONTENT_ORIGINS].url_for(project_id)
    base = f"{origin}/{project_id}/port/jupyterlab"
    async with localhost_session(headers={"Authorization": f"Bearer {key['key']}"}) as session:
        # The project is stopped: the first request starts its pod, then JupyterLab in it.
        async with session.get(f"{base}/lab") as resp:
            page = await resp.text()
            assert resp.status == 200, page[-2000:]
            assert "JupyterLab" in page
        async with session.get(f"{base}/api/status") as resp:
            assert resp.status == 200, await resp.text()
            assert "started" in await resp.json()
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped", deadline=120)
