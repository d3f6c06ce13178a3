"""What the project pod builder needs to know about the site: one frozen dataclass.

The hub builds it once from its settings (and the NFS Service's cluster IP, looked up once
by the gateway and passed in with `dataclasses.replace`). Nothing here does I/O.

`/ext` (shared software) is not a hostPath and not a claim of its own: it is the `ext`
directory of the storage that already holds the homes (the NFS export's `/ext`, or
`subPath: ext` of the projects' claim). hostPath is refused by the baseline and restricted
Pod Security levels and differs from node to node; a second ReadWriteMany claim is the
scarce kind of storage on most clusters. An admin fills `/ext` from a project whose quota
says `ext_rw`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")

StorageMode = Literal["nfs", "pvc"]
STORAGE_MODES: tuple[StorageMode, ...] = ("nfs", "pvc")

HUB_LABELS: Mapping[str, str] = {
    "app.kubernetes.io/name": "cocalc",
    "app.kubernetes.io/component": "hub",
}
"""The hub pod's labels in deployment.yaml; the NetworkPolicies select the hub with them."""


@dataclass(frozen=True, kw_only=True)
class KubernetesConfig:
    namespace: str = "cocalc-projects"
    """Namespace of the project pods, their token Secrets and the homes' claim: one of its
    own, where the API server enforces the `restricted` Pod Security level."""
    hub_namespace: str = "cocalc"
    """Namespace of the hub and its NFS Service (the hub reads it from the downward API)."""
    project_image: str = "cocalc-k8s-project"
    """Repository of the project image (the Dockerfile's `project` target), without tag."""
    project_tag: str = "0.1.0"
    """Tag of the project image; also the pod's `project_tag` label (so a valid label
    value: at most 63 characters of [A-Za-z0-9_.-])."""
    image_pull_policy: str = "IfNotPresent"
    """Kubernetes imagePullPolicy of project pods."""
    image_pull_secrets: tuple[str, ...] = ()
    """Names of docker-registry Secrets in `namespace` for a private registry."""
    uid: int = 2001
    """User id of every process in a project pod (and owner of the homes on the export)."""
    gid: int = 2001
    """Group id of project processes; also the fsGroup that may read the token file."""
    storage: StorageMode = "nfs"
    """Where homes live: 'nfs' (the hub pod's NFS export, behind a PersistentVolume the hub
    creates and the claim `projects_claim` of the manifests) or 'pvc' (an admin's own
    ReadWriteMany claim). Either way pods mount the claim with subPath projects/<id>."""
    nfs_server: str | None = None
    """Cluster IP of the NFS Service (kubelet mounts NFS with the node's resolver, which
    does not know cluster DNS). Required when `storage` is 'nfs'."""
    nfs_service: str = "cocalc-nfs"
    """Name of the NFS Service (in `hub_namespace`) whose cluster IP becomes `nfs_server`."""
    projects_claim: str = "cocalc-projects"
    """ReadWriteMany PersistentVolumeClaim in `namespace` holding `projects/` and `ext/`
    (in 'nfs' mode the manifests' claim, bound to the volume `nfs_volume`)."""
    ext: bool = True
    """Mount the shared software directory at /ext (read-only unless the quota says
    `ext_rw`)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Node labels project pods must match, e.g. {'cocalc-role': 'projects'}."""
    tolerations: tuple[Mapping[str, Any], ...] = ()
    """Kubernetes tolerations of project pods (see `parse_tolerations`)."""
    termination_grace_seconds: int = 30
    """Seconds between SIGTERM and SIGKILL when a project pod is deleted."""
    hub_labels: Mapping[str, str] = field(default_factory=lambda: dict(HUB_LABELS))
    """Labels of the hub pod: the only pod allowed to reach project pods."""
    min_cpu_request_millicores: int = 20
    """Floor of a project's CPU request, whatever the over-commit ratio."""
    min_memory_request_mb: int = 128
    """Floor of a project's memory request (MiB), whatever the over-commit ratio."""
    min_disk_request_mb: int = 100
    """Ephemeral-storage request (MiB): homes are not ephemeral storage, so scheduling
    reserves only this much of the node's disk (never more than the disk limit)."""
    agent_port: int = 6000
    """Port the project agent listens on inside the pod."""
    agent_python: str = "/opt/cocalc/bin/python"
    """Interpreter of the agent in the project image: a virtualenv of its own, so packages
    a user installs (pip install --user) never change the agent's."""
    home: str = "/home/user"
    """Mount point of the project's home directory ($HOME) in the pod."""

    def __post_init__(self) -> None:
        if self.storage not in STORAGE_MODES:
            raise ValueError(f"storage must be one of {', '.join(STORAGE_MODES)}")
        if not 0 < self.agent_port < 65536:
            raise ValueError("agent_port must be a TCP port")
        if self.uid <= 0 or self.gid <= 0:
            raise ValueError("project pods never run as root: uid and gid must be > 0")
        if not _LABEL_VALUE.fullmatch(self.project_tag):
            raise ValueError("project_tag must be a valid label value (it labels the pods)")

    @property
    def image(self) -> str:
        return f"{self.project_image}:{self.project_tag}"

    @property
    def nfs_volume(self) -> str:
        """Name of the (cluster-wide) PersistentVolume of the NFS export: named after the
        projects' namespace, so two installs never share one; the ClusterRole of
        deployment.yaml names it."""
        return f"{self.namespace}-nfs"


def parse_node_selector(text: str) -> dict[str, str]:
    """'cocalc-role=projects,disk=ssd' -> {'cocalc-role': 'projects', 'disk': 'ssd'}."""
    selector: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"node selector {item!r} is not key=value")
        selector[key.strip()] = value.strip()
    return selector


def parse_tolerations(text: str) -> tuple[dict[str, str], ...]:
    """'key=value:NoSchedule,key2:NoExecute' -> Kubernetes tolerations ('Equal' with a
    value, 'Exists' without)."""
    tolerations: list[dict[str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match, _, effect = item.rpartition(":")
        if not match or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"toleration {item!r} is not key[=value]:Effect")
        key, sep, value = match.partition("=")
        toleration = {"key": key, "operator": "Equal" if sep else "Exists", "effect": effect}
        if sep:
            toleration["value"] = value
        tolerations.append(toleration)
    return tuple(tolerations)
