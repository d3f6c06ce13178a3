"""What a real API server would refuse, enforced by the emulator from deployment.yaml: the
hub's RBAC rules (403 outside them) and the `restricted` Pod Security level of the
projects' namespace (a pod that is not restricted is refused, with the admission's reasons).
Every pod the hub builds passes both; the layout before the projects' namespace did not.
The hub also keeps to its own Secrets and pods, which RBAC cannot narrow by name."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from cocalc_k8s.core.quotas import Quota
from cocalc_k8s.k8s.cluster import NAMES_ANNOTATION, ProjectCluster
from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.gateway import KubernetesError, KubernetesGateway, api_client
from cocalc_k8s.k8s.manifests import project_pod
from cocalc_k8s.k8s.names import resolved_names
from tests.k8s_emulator import ADMIN, KubernetesEmulator
from tests.k8s_pod_security import admission_error

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent
NS, HUB_NS = "cocalc-projects", "cocalc"
PID = uuid.UUID("5b0c1e7a-2d3f-4a5b-9c8d-7e6f5a4b3c2d")
USER = "system:serviceaccount:cocalc:cocalc-hub"


def manifests() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "deployment.yaml").read_text()) if d]


@pytest.fixture
async def emulator() -> AsyncIterator[KubernetesEmulator]:
    emulator = KubernetesEmulator(manifests())
    await emulator.start()
    yield emulator
    await emulator.close()
    assert emulator.invalid == []


@pytest.fixture
async def gateway(emulator: KubernetesEmulator) -> AsyncIterator[KubernetesGateway]:
    gateway = KubernetesGateway(api_client(emulator.url), namespace=NS, backoff=0.01)
    yield gateway
    await gateway.close()


def build(config: KubernetesConfig, quota: Quota | None = None) -> dict[str, Any]:
    return project_pod(PID, quota or Quota(), config, names=resolved_names(PID),
                       cpu_oc=1.0, mem_oc=1.0)  # fmt: skip


def old_layout_pod() -> dict[str, Any]:
    """A project pod as the hub built it before: the export mounted inline over NFS."""
    pod = build(KubernetesConfig(namespace=NS))
    pod["spec"]["volumes"][0] = {
        "name": "projects", "nfs": {"server": "10.96.0.20", "path": f"/projects/{PID}"},
    }  # fmt: skip
    return pod


async def post_as_admin(emulator: KubernetesEmulator, path: str, body: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(emulator.url + path, json=body, headers={"Authorization": ADMIN}) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    "config",
    [
        KubernetesConfig(namespace=NS),
        KubernetesConfig(namespace=NS, storage="pvc", ext=False),
        KubernetesConfig(namespace=NS, node_selector={"cocalc-role": "projects"},
                         tolerations=({"key": "cocalc-role", "operator": "Equal",
                                       "value": "projects", "effect": "NoSchedule"},)),
    ],
    ids=["nfs", "pvc", "node-pool"],
)  # fmt: skip
def test_every_pod_the_hub_builds_is_restricted(config: KubernetesConfig) -> None:
    for quota in (Quota(), Quota(network=False, ext_rw=True)):
        assert admission_error(build(config, quota), "restricted") is None


def test_the_prepull_daemonset_is_restricted_too() -> None:
    (daemonset,) = [d for d in manifests() if d["kind"] == "DaemonSet"]
    assert daemonset["metadata"]["namespace"] == NS
    pod = {"metadata": {"name": "prepull"}, "spec": daemonset["spec"]["template"]["spec"]}
    assert admission_error(pod, "restricted") is None


async def test_the_projects_namespace_refuses_what_is_not_restricted(
    emulator: KubernetesEmulator,
) -> None:
    status, body = await post_as_admin(emulator, f"/api/v1/namespaces/{NS}/pods", old_layout_pod())
    assert status == 403
    assert body["message"] == (
        f'pods "project-{PID}" is forbidden: violates PodSecurity "restricted:latest": '
        'restricted volume types (volume "projects" uses restricted volume type "nfs")'
    )
    loose = build(KubernetesConfig(namespace=NS))
    del loose["spec"]["securityContext"]
    del loose["spec"]["containers"][0]["securityContext"]
    status, body = await post_as_admin(emulator, f"/api/v1/namespaces/{NS}/pods", loose)
    assert status == 403
    for reason in (
        'allowPrivilegeEscalation != false (container "agent" must set '
        "securityContext.allowPrivilegeEscalation=false)",
        'unrestricted capabilities (container "agent" must set '
        'securityContext.capabilities.drop=["ALL"])',
        'runAsNonRoot != true (pod or container "agent" must set '
        "securityContext.runAsNonRoot=true)",
        'seccompProfile (pod or container "agent" must set securityContext.seccompProfile.type '
        'to "RuntimeDefault" or "Localhost")',
    ):
        assert reason in body["message"]
    # The hub's namespace stays privileged (its NFS container): the same pod is admitted.
    status, _ = await post_as_admin(emulator, f"/api/v1/namespaces/{HUB_NS}/pods", old_layout_pod())
    assert status == 201


async def test_the_hub_may_do_what_it_needs_and_nothing_else(
    gateway: KubernetesGateway, emulator: KubernetesEmulator
) -> None:
    pod = build(KubernetesConfig(namespace=NS))
    assert (await gateway.create("pod", pod))["metadata"]["uid"]
    assert await gateway.get("pod", pod["metadata"]["name"]) is not None
    assert (await gateway.list("event"))["items"] == []
    assert await gateway.get("secret", "anything") is None  # get: allowed (404)
    assert await gateway.get("service", "cocalc-nfs", namespace=HUB_NS) is None
    assert await gateway.get("persistent_volume", "cocalc-projects-nfs") is None
    assert emulator.refused == []

    async def refused(call: Any) -> str:
        with pytest.raises(KubernetesError) as info:
            await call
        assert info.value.status == 403
        return str(info.value)

    # Pods in the privileged hub namespace: the way from a hub compromise to a node's root.
    in_hub = {**pod, "metadata": {**pod["metadata"], "namespace": HUB_NS}}
    message = await refused(gateway.create("pod", in_hub, namespace=HUB_NS))
    assert f'User "{USER}" cannot create resource "pods"' in message
    assert 'in the namespace "cocalc"' in message
    await refused(gateway.get("secret", "cocalc-tls", namespace=HUB_NS))  # the hub's own
    await refused(gateway.get("service", "cocalc", namespace=HUB_NS))  # only the NFS Service
    await refused(gateway.list("secret"))  # get by name only: no listing every Secret
    await refused(gateway.get("persistent_volume", "someone-elses"))
    assert "at the cluster scope" in emulator.refused[-1]


async def test_the_hub_never_touches_a_secret_it_did_not_make(
    emulator: KubernetesEmulator, gateway: KubernetesGateway
) -> None:
    """A Secret with the name the hub would use but without its labels (another tool's, or
    planted) is neither adopted, nor replaced, nor deleted, nor read for a token."""
    name = f"project-{PID}-token"
    foreign = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": NS, "labels": {"project_id": str(PID)}},
        "stringData": {"token": "not-the-hubs"},
    }  # fmt: skip
    status, planted = await post_as_admin(emulator, f"/api/v1/namespaces/{NS}/secrets", foreign)
    assert status == 201
    cluster = ProjectCluster(gateway, KubernetesConfig(namespace=NS, nfs_server="10.96.0.20"))
    await cluster.open()
    try:
        await cluster.loaded()
        with pytest.raises(KubernetesError, match="not the hub's"):
            await cluster.create(PID, Quota(), "t" * 43, cpu_oc=1.0, mem_oc=1.0)
        # The pod the hub did make is in the cache; its token Secret is not the planted one.
        async with asyncio.timeout(10):
            while PID not in cluster.project_ids():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert await cluster.read_token(PID) is None
    finally:
        await cluster.close()
    kept = emulator.store.get("secrets", NS, name)
    assert kept is not None and kept["metadata"]["uid"] == planted["metadata"]["uid"]
    assert not [r for r in emulator.requests if r[0] == "DELETE" and name in r[1]]


async def test_the_hub_never_adopts_or_deletes_a_pod_it_did_not_make(
    emulator: KubernetesEmulator, gateway: KubernetesGateway
) -> None:
    stranger = build(KubernetesConfig(namespace=NS))
    stranger["metadata"]["labels"] = {"run": "something-else"}
    stranger["metadata"]["annotations"] = {NAMES_ANNOTATION: json.dumps(resolved_names(PID))}
    status, planted = await post_as_admin(emulator, f"/api/v1/namespaces/{NS}/pods", stranger)
    assert status == 201
    cluster = ProjectCluster(gateway, KubernetesConfig(namespace=NS, nfs_server="10.96.0.20"))
    await cluster.open()
    try:
        await cluster.loaded()
        with pytest.raises(KubernetesError, match="not the hub's"):
            await cluster.create(PID, Quota(), "t" * 43, cpu_oc=1.0, mem_oc=1.0)
    finally:
        await cluster.close()
    kept = emulator.store.get("pods", NS, f"project-{PID}")
    assert kept is not None and kept["metadata"]["uid"] == planted["metadata"]["uid"]
    assert emulator.store.get("secrets", NS, f"project-{PID}-token") is None


async def test_the_export_volume_is_read_first_and_never_moved(
    emulator: KubernetesEmulator, gateway: KubernetesGateway
) -> None:
    """An admin may make the volume and take `create` away: the hub reads it by name first.
    A volume naming another server (the NFS Service recreated) is reported, not changed."""
    from cocalc_k8s.k8s.storage import nfs_volume

    config = KubernetesConfig(namespace=NS, nfs_server="10.96.0.20")
    status, _ = await post_as_admin(emulator, "/api/v1/persistentvolumes",
                                    nfs_volume(config, "10.96.0.99"))  # fmt: skip
    assert status == 201
    emulator.rbac.grants = [  # type: ignore[union-attr]
        (where, [r for r in rules if r.get("verbs") != ["create"]
                 or r.get("resources") != ["persistentvolumes"]])
        for where, rules in emulator.rbac.grants  # type: ignore[union-attr]
    ]  # fmt: skip
    cluster = ProjectCluster(gateway, config)
    try:
        with pytest.raises(
            LookupError, match=re.escape("10.96.0.99, not the NFS Service at 10.96.0.20")
        ):
            await cluster.create(PID, Quota(), "t" * 43, cpu_oc=1.0, mem_oc=1.0)
    finally:
        await cluster.close()
    volume = emulator.store.get("persistentvolumes", "", config.nfs_volume)
    assert volume is not None and volume["spec"]["nfs"]["server"] == "10.96.0.99"
    assert emulator.store.get("pods", NS, f"project-{PID}") is None  # no pod without storage
    assert emulator.refused == []  # no create was even tried
