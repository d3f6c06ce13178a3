"""Project pod manifests: literal expected dicts (kubespawner style), the resource
arithmetic, the volumes of both storage modes, and the real Kubernetes schemas."""

from __future__ import annotations

import json
import uuid
from typing import Any

import kubernetes_validate
import pytest

from cocalc_k8s.core.quotas import DefaultQuotas, Quota
from cocalc_k8s.k8s.config import (
    HUB_LABELS,
    KubernetesConfig,
    parse_node_selector,
    parse_tolerations,
)
from cocalc_k8s.k8s.manifests import agent_command, project_pod, project_token_secret
from cocalc_k8s.k8s.names import resolved_names
from cocalc_k8s.k8s.resources import project_resources, request_from_limit

K8S_VERSION = "1.37.0"

PID = uuid.UUID("0b5c6f1e-4a7d-4c56-9d1a-7f0e2b3c4d5e")
NAMES = resolved_names(PID)
NFS = KubernetesConfig(nfs_server="10.96.0.42")
POOL = KubernetesConfig(
    namespace="research",
    project_image="registry.example.org/cocalc-k8s-project",
    project_tag="2026.11",
    image_pull_secrets=("regcred",),
    storage="pvc",
    projects_claim="homes",
    node_selector=parse_node_selector("cocalc-role=projects"),
    tolerations=parse_tolerations("cocalc-role=projects:NoSchedule"),
    termination_grace_seconds=10,
)
SCRIPT = (
    "exec /opt/cocalc/bin/python -m cocalc_k8s.agent --home /home/user --host 0.0.0.0 "
    "--port 6000 --token-fd 3 3</var/run/cocalc/token"
)


def build(quota: Quota, config: KubernetesConfig, oc: DefaultQuotas | None = None) -> Any:
    oc = oc or DefaultQuotas()
    return project_pod(PID, quota, config, names=NAMES, cpu_oc=oc.cpu_oc, mem_oc=oc.mem_oc)


def labels(tag: str, network: str) -> dict[str, str]:
    return {
        "run": "project",
        "project_id": str(PID),
        "project_tag": tag,
        "network": network,
        "app.kubernetes.io/name": "cocalc",
        "app.kubernetes.io/managed-by": "cocalc-hub",
        "app.kubernetes.io/component": "project",
        "app.kubernetes.io/version": tag,
    }


def container(image: str, resources: dict[str, Any], mounts: list[Any]) -> dict[str, Any]:
    return {
        "name": "agent",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["tini", "--", "sh", "-c", SCRIPT],
        "workingDir": "/home/user",
        "env": [
            {"name": "HOME", "value": "/home/user"},
            {"name": "COCALC_PROJECT_ID", "value": str(PID)},
        ],
        "ports": [{"name": "agent", "containerPort": 6000, "protocol": "TCP"}],
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "readinessProbe": {
            "tcpSocket": {"port": "agent"},
            "periodSeconds": 1,
            "failureThreshold": 3,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            *mounts,
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "agent-token", "mountPath": "/var/run/cocalc", "readOnly": True},
        ],
    }


POD_SECURITY = {
    "runAsUser": 2001,
    "runAsGroup": 2001,
    "runAsNonRoot": True,
    "fsGroup": 2001,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
TMP_VOLUME = {"name": "tmp", "emptyDir": {}}
TOKEN_VOLUME = {
    "name": "agent-token",
    "secret": {
        "secretName": f"project-{PID}-token",
        "defaultMode": 0o440,
        "items": [{"key": "token", "path": "token"}],
    },
}


def test_default_quota_on_nfs() -> None:
    resources = {
        "limits": {"cpu": "1000m", "memory": "2000Mi", "ephemeral-storage": "5000Mi"},
        "requests": {"cpu": "100m", "memory": "400Mi", "ephemeral-storage": "100Mi"},
    }
    mounts = [
        {"name": "projects", "mountPath": "/home/user", "subPath": f"projects/{PID}"},
        {"name": "projects", "mountPath": "/ext", "subPath": "ext", "readOnly": True},
    ]
    assert build(Quota(), NFS) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"project-{PID}",
            "namespace": "cocalc-projects",
            "labels": labels("0.1.0", "true"),
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "securityContext": POD_SECURITY,
            "containers": [container("cocalc-k8s-project:0.1.0", resources, mounts)],
            # No inline nfs volume ("restricted" refuses it): the claim bound to the export.
            "volumes": [
                {"name": "projects", "persistentVolumeClaim": {"claimName": "cocalc-projects"}},
                TMP_VOLUME,
                TOKEN_VOLUME,
            ],
        },
    }


def test_pool_pvc_ext_rw_no_network() -> None:
    quota = Quota(memory_mb=8000, cpu=4, disk_mb=20000, network=False, ext_rw=True)
    resources = {
        "limits": {"cpu": "4000m", "memory": "8000Mi", "ephemeral-storage": "20000Mi"},
        "requests": {"cpu": "1000m", "memory": "4000Mi", "ephemeral-storage": "100Mi"},
    }
    mounts = [
        {"name": "projects", "mountPath": "/home/user", "subPath": f"projects/{PID}"},
        {"name": "projects", "mountPath": "/ext", "subPath": "ext", "readOnly": False},
    ]
    pod = build(quota, POOL, DefaultQuotas(cpu_oc=4, mem_oc=2))
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"project-{PID}",
            "namespace": "research",
            "labels": labels("2026.11", "false"),
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 10,
            "securityContext": POD_SECURITY,
            "containers": [
                container("registry.example.org/cocalc-k8s-project:2026.11", resources, mounts)
            ],
            "volumes": [
                {"name": "projects", "persistentVolumeClaim": {"claimName": "homes"}},
                TMP_VOLUME,
                TOKEN_VOLUME,
            ],
            "imagePullSecrets": [{"name": "regcred"}],
            "nodeSelector": {"cocalc-role": "projects"},
            "tolerations": [
                {
                    "key": "cocalc-role",
                    "operator": "Equal",
                    "value": "projects",
                    "effect": "NoSchedule",
                }
            ],
        },
    }


@pytest.mark.parametrize(
    ("limit", "ratio", "floor", "expected"),
    [
        (1000, 10, 20, 100),  # limit / ratio
        (1000, 3, 20, 334),  # rounded up
        (100, 10, 20, 20),  # raised to the floor
        (10, 10, 20, 10),  # but never above the limit
        (2000, 1, 128, 2000),  # no over-commit
    ],
)
def test_request_from_limit(limit: int, ratio: float, floor: int, expected: int) -> None:
    assert request_from_limit(limit, ratio, floor) == expected


def test_floors_and_tiny_quotas() -> None:
    config = KubernetesConfig(min_cpu_request_millicores=50, min_memory_request_mb=256)
    tiny = Quota(memory_mb=200, cpu=0.05, disk_mb=50)
    assert project_resources(tiny, config, cpu_oc=10, mem_oc=5) == {
        "limits": {"cpu": "50m", "memory": "200Mi", "ephemeral-storage": "50Mi"},
        "requests": {"cpu": "50m", "memory": "200Mi", "ephemeral-storage": "50Mi"},
    }
    with pytest.raises(ValueError, match="over-commit"):
        request_from_limit(1000, 0.5, 1)


def test_no_secret_in_the_pod_and_token_in_its_secret() -> None:
    token = "s3cret-token-" + "x" * 30
    pod = json.dumps(build(Quota(), NFS))
    assert token not in pod and "Bearer" not in pod
    env_names = {e["name"] for e in build(Quota(), NFS)["spec"]["containers"][0]["env"]}
    assert env_names == {"HOME", "COCALC_PROJECT_ID"}
    secret = project_token_secret(PID, token, NFS, names=NAMES, owner=(NAMES["pod"], "uid-1"))
    assert secret["stringData"] == {"token": token}
    assert secret["immutable"] is True
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": f"project-{PID}", "uid": "uid-1"}
    ]
    assert "run" not in secret["metadata"]["labels"]  # the pod watch never sees it


def test_names_are_kept_once_resolved() -> None:
    stored = {"pod": "legacy-pod", "home_subpath": "homes/abc", "other": 1}
    names = resolved_names(PID, stored)
    assert names == {
        "pod": "legacy-pod",
        "token_secret": f"project-{PID}-token",
        "home_subpath": "homes/abc",
        "ext_subpath": "ext",
    }
    pod = project_pod(PID, Quota(), NFS, names=names, cpu_oc=1, mem_oc=1)
    assert pod["metadata"]["name"] == "legacy-pod"
    assert pod["spec"]["containers"][0]["volumeMounts"][0]["subPath"] == "homes/abc"


def test_config_errors_and_parsers() -> None:
    with pytest.raises(ValueError, match="storage"):
        KubernetesConfig(storage="hostpath")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="label"):
        KubernetesConfig(project_tag="a" * 64)
    with pytest.raises(ValueError, match="root"):
        KubernetesConfig(uid=0)
    with pytest.raises(ValueError, match="key=value"):
        parse_node_selector("nope")
    assert parse_tolerations("gpu:NoExecute, a=b:PreferNoSchedule") == (
        {"key": "gpu", "operator": "Exists", "effect": "NoExecute"},
        {"key": "a", "operator": "Equal", "effect": "PreferNoSchedule", "value": "b"},
    )
    with pytest.raises(ValueError, match="Effect"):
        parse_tolerations("a=b:Sometimes")
    assert KubernetesConfig().hub_labels == HUB_LABELS


def test_without_ext() -> None:
    pod = build(Quota(), KubernetesConfig(nfs_server="10.0.0.1", ext=False))
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["projects", "tmp", "agent-token"]
    pod = build(Quota(), KubernetesConfig(storage="pvc", ext=False))
    assert [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]] == [
        "/home/user",
        "/tmp",
        "/var/run/cocalc",
    ]


def test_agent_command_quotes_its_settings() -> None:
    command = agent_command(KubernetesConfig(home="/home/a b", agent_port=7000))
    assert command[-1].startswith(
        "exec /opt/cocalc/bin/python -m cocalc_k8s.agent --home '/home/a b'"
    )
    assert "--port 7000 --token-fd 3 3</var/run/cocalc/token" in command[-1]


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The Pod Security Standard 'restricted' checks that a pod spec can fail."""
    spec, problems = pod["spec"], []
    pod_sc = spec.get("securityContext", {})
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc["capabilities"].get("add"):
            problems.append("capabilities")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            problems.append("runAsNonRoot")
        if "seccompProfile" not in sc and "seccompProfile" not in pod_sc:
            problems.append("seccomp")
    allowed = {"persistentVolumeClaim", "nfs", "secret", "configMap", "emptyDir", "projected"}
    problems += [v["name"] for v in spec["volumes"] if not set(v) - {"name"} <= allowed]
    return problems


@pytest.mark.parametrize("config", [NFS, POOL], ids=["nfs", "pvc"])
@pytest.mark.parametrize("quota", [Quota(), Quota(network=False, ext_rw=True, cpu=0.05)])
def test_objects_pass_the_kubernetes_schemas(config: KubernetesConfig, quota: Quota) -> None:
    pod = build(quota, config)
    assert restricted_violations(pod) == []
    secret = project_token_secret(PID, "t" * 43, config, names=NAMES, owner=("p", "u"))
    for obj in (pod, secret):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
