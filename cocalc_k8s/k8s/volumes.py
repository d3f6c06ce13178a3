"""A project pod's volumes and mounts: the home, /ext, /tmp and the agent's token file.

    nfs mode   home = nfs {server, path: /projects/<id>}       ext = nfs {path: /ext}
    pvc mode   one claim, mounted twice: subPath projects/<id> (home) and subPath ext

/ext is read-only (volume and mount) unless the quota says `ext_rw`. The container's root
filesystem is read-only (manifests.py): the home is the writable volume, and /tmp an
`emptyDir` (counted in the pod's ephemeral-storage limit). The token file is
`root:<gid>` mode 0440 through the pod's fsGroup: readable by the project's uid, by no
other non-root uid.
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
    if config.storage == "nfs":
        volumes, mounts = _nfs(names, config, ext_rw=ext_rw)
    else:
        volumes, mounts = _claim(names, config, ext_rw=ext_rw)
    return [*volumes, tmp_volume, token_volume], [*mounts, tmp_mount, token_mount]


def _nfs(
    names: ResolvedNames, config: KubernetesConfig, *, ext_rw: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not config.nfs_server:
        raise ValueError("storage 'nfs' needs the NFS Service's cluster IP (nfs_server)")
    home = {"server": config.nfs_server, "path": f"/{names['home_subpath']}"}
    volumes: list[dict[str, Any]] = [{"name": "home", "nfs": home}]
    mounts: list[dict[str, Any]] = [{"name": "home", "mountPath": config.home}]
    if config.ext:
        ext = {"server": config.nfs_server, "path": f"/{names['ext_subpath']}"}
        volumes.append({"name": "ext", "nfs": {**ext, "readOnly": not ext_rw}})
        mounts.append({"name": "ext", "mountPath": EXT_MOUNT, "readOnly": not ext_rw})
    return volumes, mounts


def _claim(
    names: ResolvedNames, config: KubernetesConfig, *, ext_rw: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "projects", "persistentVolumeClaim": {"claimName": config.projects_claim}}
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
    return volumes, mounts
