"""A project pod's volumes and mounts: the home, /ext and the agent's token file.

Both storage modes mount one ReadWriteMany claim of the projects' namespace twice:
subPath projects/<id> (the home) and subPath ext. In 'nfs' mode the claim is bound to the
PersistentVolume of the hub pod's export (`cocalc_k8s.k8s.storage`); in 'pvc' mode it is
the admin's. An inline `nfs:` volume would be simpler, but the `restricted` Pod Security
level that the projects' namespace enforces refuses it (only claims, secrets, configMaps,
emptyDir, projected, downwardAPI, csi and ephemeral volumes pass).

/ext is read-only unless the quota says `ext_rw`. The container's root filesystem is
read-only (manifests.py): the home is the writable volume, and /tmp an `emptyDir` (counted
in the pod's ephemeral-storage limit). The token file is `root:<gid>` mode 0440 through the
pod's fsGroup: readable by the project's uid, by no other non-root uid.
"""

from __future__ import annotations

from typing import Any

from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.names import ResolvedNames

EXT_MOUNT = "/ext"
TOKEN_DIR = "/var/run/cocalc"  # noqa: S105 (a directory, not a password)
TOKEN_FILE = f"{TOKEN_DIR}/token"
TOKEN_MODE = 0o440
TMP_DIR = "/tmp"  # noqa: S108 (the pod's own emptyDir, not the host's /tmp)


def project_volumes(
    names: ResolvedNames, config: KubernetesConfig, *, ext_rw: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) of the project container."""
    token_volume = {
        "name": "agent-token",
        "secret": {
            "secretName": names["token_secret"],
            "defaultMode": TOKEN_MODE,
            "items": [{"key": "token", "path": "token"}],
        },
    }
    token_mount = {"name": "agent-token", "mountPath": TOKEN_DIR, "readOnly": True}
    tmp_volume = {"name": "tmp", "emptyDir": {}}
    tmp_mount = {"name": "tmp", "mountPath": TMP_DIR}
    volumes: list[dict[str, Any]] = [
        {"name": "projects", "persistentVolumeClaim": {"claimName": config.projects_claim}},
        tmp_volume,
        token_volume,
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "projects", "mountPath": config.home, "subPath": names["home_subpath"]}
    ]
    if config.ext:
        mounts.append(
            {
                "name": "projects",
                "mountPath": EXT_MOUNT,
                "subPath": names["ext_subpath"],
                "readOnly": not ext_rw,
            }
        )
    return volumes, [*mounts, tmp_mount, token_mount]
