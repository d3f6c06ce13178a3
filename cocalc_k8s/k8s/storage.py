"""The PersistentVolume of the hub pod's NFS export ('nfs' storage): a pure function.

deployment.yaml ships the claim (`projects_claim`, in the projects' namespace, bound by
`volumeName` to this volume); the hub creates the volume at its first project start, once
it knows the NFS Service's cluster IP (kubelets mount NFS with the node's resolver, which
does not know cluster DNS, so the volume names the address, not the Service). The volume
mounts the export's pseudo root: its `projects/` and `ext/` are the two exports of
docker/ganesha.conf, and pods reach them with a subPath each (`cocalc_k8s.k8s.volumes`).

`claimRef` pre-binds the volume to that claim and no other; `Retain` keeps the homes
should anyone delete the claim.
"""

from __future__ import annotations

from typing import Any

from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.names import APP_LABELS

NFS_MOUNT_OPTIONS = ("nfsvers=4.1", "proto=tcp", "hard")
CAPACITY = "1Ti"
"""Nominal: NFS volumes enforce no size; the hub's own claim sizes the storage."""


def nfs_volume(config: KubernetesConfig, server: str) -> dict[str, Any]:
    """The PersistentVolume of the export at `server` (an IP address)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": config.nfs_volume,
            "labels": {**APP_LABELS, "app.kubernetes.io/component": "projects-storage"},
        },
        "spec": {
            "capacity": {"storage": CAPACITY},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": list(NFS_MOUNT_OPTIONS),
            "nfs": {"server": server, "path": "/"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": config.namespace,
                "name": config.projects_claim,
            },
        },
    }


def volume_server(volume: dict[str, Any]) -> str | None:
    """The NFS server an existing volume names (None: not an NFS volume)."""
    server = ((volume.get("spec") or {}).get("nfs") or {}).get("server")
    return server if isinstance(server, str) else None
