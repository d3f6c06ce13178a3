"""The parts of the Kubernetes backend: pod status mapping (pure), the gateway's retries and
idempotence, and adoption of running pods by a new hub (token read back from the Secret),
against the emulated API server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cocalc_k8s.backends.base import ProjectSpec
from cocalc_k8s.backends.kubernetes import KubernetesBackend
from cocalc_k8s.backends.pod_wait import PodWaiters
from cocalc_k8s.core.quotas import Quota
from cocalc_k8s.k8s.cluster import ProjectCluster
from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.gateway import KubernetesError, KubernetesGateway, api_client
from cocalc_k8s.k8s.pod_status import pod_status
from tests.k8s_emulator import KubernetesEmulator
from tests.k8s_kubelet import TestKubelet

pytestmark = pytest.mark.timeout(60)
NS = "cocalc"
PID = uuid.UUID("3f1d7c2e-9a4b-4c1d-8e2f-0a1b2c3d4e5f")


def pod(status: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"project_id": str(PID)}, **metadata}, "status": status}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"containerStatuses": [{"state": {"waiting": {"reason": reason, "message": message}}}]}


def terminated(code: int, reason: str = "Error") -> dict[str, Any]:
    state = {"terminated": {"exitCode": code, "reason": reason}}
    return {"phase": "Failed", "containerStatuses": [{"state": state}]}


@pytest.mark.parametrize(
    ("status", "state", "reason"),
    [
        ({"phase": "Pending"}, "starting", None),
        ({"phase": "Pending", **waiting("ErrImagePull")}, "starting", None),
        ({"phase": "Pending", **waiting("ImagePullBackOff", "nope")}, "failed", "ImagePullBackOff"),
        ({"phase": "Pending", **waiting("CreateContainerConfigError")}, "failed", "could not"),
        (
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: insufficient memory",
                    }
                ],
            },
            "starting",
            "insufficient memory",
        ),
        (
            {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]},
            "starting",
            None,
        ),
        (
            {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            "running",
            None,
        ),
        (terminated(137, "OOMKilled"), "failed", "OOMKilled"),
        (terminated(2), "failed", "exit code 2"),
        ({"phase": "Failed", "reason": "Evicted", "message": "disk"}, "failed", "Evicted disk"),
        ({"phase": "Succeeded"}, "stopped", "exited"),
        ({"phase": "Unknown"}, "failed", "stopped responding"),
    ],
)
def test_pod_status(status: dict[str, Any], state: str, reason: str | None) -> None:
    result = pod_status(pod({**status, "podIP": "10.0.0.5"}), agent_port=6000)
    assert result is not None
    assert (result.state, result.ip, result.port) == (state, "10.0.0.5", 6000)
    if reason is None:
        assert result.reason is None
    else:
        assert result.reason is not None and reason in result.reason


def test_pod_status_deleting_port_annotation_and_foreign_pods() -> None:
    deleting = pod({"phase": "Running"}, deletionTimestamp="2026-01-01T00:00:00Z")
    assert pod_status(deleting, agent_port=6000).state == "stopping"  # type: ignore[union-attr]
    annotated = pod({}, annotations={"cocalc.io/agent-port": "41234"})
    assert pod_status(annotated, agent_port=6000).port == 41234  # type: ignore[union-attr]
    assert pod_status({"metadata": {"labels": {}}}, agent_port=6000) is None


@pytest.fixture
async def emulator() -> AsyncIterator[KubernetesEmulator]:
    emulator = KubernetesEmulator()
    await emulator.start()
    yield emulator
    await emulator.close()
    assert emulator.invalid == []


@pytest.fixture
async def gateway(emulator: KubernetesEmulator) -> AsyncIterator[KubernetesGateway]:
    gateway = KubernetesGateway(api_client(emulator.url), namespace=NS, backoff=0.01)
    yield gateway
    await gateway.close()


def secret(name: str, owner: str = "a") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": NS,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p",
                                          "uid": owner}]},
        "stringData": {"token": f"token-of-{owner}"},
    }  # fmt: skip


async def test_gateway_create_adopts_or_replaces(gateway: KubernetesGateway) -> None:
    first = await gateway.create("secret", secret("s", "a"))
    adopted = await gateway.create("secret", secret("s", "b"))
    assert adopted["metadata"]["uid"] == first["metadata"]["uid"]
    replaced = await gateway.create("secret", secret("s", "b"), replace_if=lambda old: True)
    assert replaced["metadata"]["uid"] != first["metadata"]["uid"]
    assert replaced["metadata"]["ownerReferences"][0]["uid"] == "b"


async def test_gateway_delete_is_idempotent_and_get_answers_none(
    gateway: KubernetesGateway,
) -> None:
    await gateway.create("secret", secret("s"))
    await gateway.delete("secret", "s")
    await gateway.delete("secret", "s")
    assert await gateway.get("secret", "s") is None


async def test_gateway_retries_server_errors_but_not_client_errors(
    gateway: KubernetesGateway, emulator: KubernetesEmulator
) -> None:
    emulator.fail_next(3, 503)
    assert (await gateway.list("pod"))["items"] == []
    emulator.fail_next(1, 403)
    with pytest.raises(KubernetesError) as info:
        await gateway.list("pod")
    assert info.value.status == 403
    emulator.fail_next(10, 500)
    with pytest.raises(KubernetesError) as info:
        await gateway.get("secret", "x")
    assert info.value.status == 500


async def test_a_new_hub_adopts_running_pods(emulator: KubernetesEmulator, tmp_path: Path) -> None:
    config = KubernetesConfig(namespace=NS, nfs_server="10.0.0.2")
    kubelet = TestKubelet(emulator.store, tmp_path, NS)
    kubelet.start()
    backends = []
    for _ in range(2):
        gateway = KubernetesGateway(api_client(emulator.url), namespace=NS, backoff=0.01)
        backends.append(KubernetesBackend(ProjectCluster(gateway, config), start_timeout=20))
    old, new = backends
    try:
        steps: list[tuple[str, int]] = []
        spec = ProjectSpec(project_id=PID, home=tmp_path / str(PID), quota=Quota())
        address = await old.start(spec, lambda message, percent: steps.append((message, percent)))
        assert [p for _, p in steps] == sorted(p for _, p in steps)
        assert ("Pulling the project image", 40) in steps
        await old.close()  # the hub goes away; the pod stays

        assert await new.running() == {PID}
        adopted = new.address(PID)
        assert adopted is not None and adopted.token == address.token
        headers = {"Authorization": f"Bearer {adopted.token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(adopted.url + "/health", headers=headers) as resp,
        ):
            assert resp.status == 200
        exits: list[str] = []
        new.on_exit(lambda project_id, reason: exits.append(reason))
        await new.stop(PID)
        assert new.address(PID) is None and exits == []
    finally:
        await new.close()
        await kubelet.close()


async def test_waiters_wake_on_change_only() -> None:
    waiters = PodWaiters()
    ready = False
    task = asyncio.create_task(waiters.wait(PID, lambda: ready))
    await asyncio.sleep(0)
    assert not task.done()
    ready = True
    waiters.changed(PID)
    await asyncio.wait_for(task, 1)
