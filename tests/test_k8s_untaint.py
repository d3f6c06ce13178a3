"""The optional prepull taint scheme (prepull-untaint.yaml): the untaint container removes
`cocalc-projects=init:NoSchedule` from its node and nothing else, with the RBAC of that
file enforced by the emulator; the file's objects pass the schemas and `restricted`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cocalc_k8s.k8s.gateway import KubernetesError, KubernetesGateway, api_client
from cocalc_k8s.k8s.untaint import JSON_PATCH, untaint, untaint_patch
from tests.k8s_emulator import K8S_VERSION, KubernetesEmulator
from tests.k8s_pod_security import admission_error

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent
NS = "cocalc-projects"
OURS = {"key": "cocalc-projects", "value": "init", "effect": "NoSchedule"}
OTHER = {"key": "cocalc-role", "value": "projects", "effect": "NoSchedule"}


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / name).read_text()) if d]


def node(name: str, taints: list[dict[str, str]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"taints": taints}}  # fmt: skip


@pytest.fixture
async def emulator() -> AsyncIterator[KubernetesEmulator]:
    emulator = KubernetesEmulator(
        documents("prepull-untaint.yaml"), hub_namespace=NS, service_account="cocalc-prepull"
    )
    await emulator.start()
    yield emulator
    await emulator.close()
    assert emulator.invalid == []


@pytest.fixture
async def gateway(emulator: KubernetesEmulator) -> AsyncIterator[KubernetesGateway]:
    gateway = KubernetesGateway(api_client(emulator.url), namespace=NS, backoff=0.01)
    yield gateway
    await gateway.close()


def test_the_patch_removes_our_taint_only() -> None:
    assert untaint_patch([OTHER]) is None
    assert untaint_patch([]) is None
    assert untaint_patch([OURS, OTHER]) == [
        {"op": "test", "path": "/spec/taints", "value": [OURS, OTHER]},
        {"op": "replace", "path": "/spec/taints", "value": [OTHER]},
    ]
    assert untaint_patch([OURS])[-1] == {"op": "remove", "path": "/spec/taints"}  # type: ignore[index]


async def test_untaint_its_node_with_the_files_rbac(
    emulator: KubernetesEmulator, gateway: KubernetesGateway
) -> None:
    emulator.store.put("nodes", node("n1", [OURS, OTHER]), added=True)
    assert await untaint(gateway, "n1") is True
    assert emulator.store.get("nodes", "", "n1")["spec"]["taints"] == [OTHER]  # type: ignore[index]
    assert await untaint(gateway, "n1") is False  # nothing left to do
    # Taints changed since they were read: the test op fails, nothing is lost.
    with pytest.raises(KubernetesError) as info:
        await gateway.call("patch_node", "n1", untaint_patch([OURS, OTHER]),
                           _content_type=JSON_PATCH)  # fmt: skip
    assert info.value.status == 422
    assert emulator.store.get("nodes", "", "n1")["spec"]["taints"] == [OTHER]  # type: ignore[index]
    assert emulator.refused == []
    # Its account may touch nodes, and nothing else.
    with pytest.raises(KubernetesError) as info:
        await gateway.get("secret", "anything")
    assert info.value.status == 403
    with pytest.raises(KubernetesError) as info:
        await gateway.list("pod")
    assert info.value.status == 403


async def test_the_command_untaints_and_exits_with_once(emulator: KubernetesEmulator) -> None:
    emulator.store.put("nodes", node("n2", [OURS]), added=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cocalc_k8s.k8s.untaint", "--node", "n2",
        "--api-url", emulator.url, "--once",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()
    assert "taints" not in emulator.store.get("nodes", "", "n2")["spec"]  # type: ignore[index]


def test_the_files_objects_are_valid_and_restricted() -> None:
    docs = documents("prepull-untaint.yaml")
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    spec = daemonset["spec"]["template"]["spec"]
    assert admission_error({"metadata": {"name": "p"}, "spec": spec}, "restricted") is None
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}]
    assert spec["serviceAccountName"] == "cocalc-prepull"
    assert {"key": "cocalc-projects", "operator": "Equal", "value": "init",
            "effect": "NoSchedule"} in spec["tolerations"]  # fmt: skip
    # The same project image as the plain prepull DaemonSet (and so as the hub's setting).
    (plain,) = [d for d in documents("deployment.yaml") if d["kind"] == "DaemonSet"]
    pulled = plain["spec"]["template"]["spec"]["initContainers"][0]["image"]
    assert spec["initContainers"][0]["image"] == pulled
    (untaint_container,) = spec["containers"]
    assert untaint_container["command"] == ["python", "-m", "cocalc_k8s.k8s.untaint"]
