"""The site's `KubernetesConfig`, built from the hub's `Settings` (pure; no I/O).

The NFS server's address is filled in later, by the cluster, from the NFS Service's
cluster IP (unless `--k8s-nfs-server` names it): that lookup is I/O and is done once.
"""

from __future__ import annotations

from cocalc_k8s.core.settings import Settings, SettingsError
from cocalc_k8s.k8s.config import KubernetesConfig, parse_node_selector, parse_tolerations


def config_from_settings(settings: Settings) -> KubernetesConfig:
    """Raises SettingsError naming the setting when a value makes no valid pod."""
    try:
        node_selector = parse_node_selector(settings.k8s_node_selector)
    except ValueError as exc:
        raise SettingsError(f"--k8s-node-selector: {exc}") from None
    try:
        tolerations = parse_tolerations(settings.k8s_tolerations)
    except ValueError as exc:
        raise SettingsError(f"--k8s-tolerations: {exc}") from None
    secrets = tuple(
        name.strip() for name in settings.k8s_image_pull_secrets.split(",") if name.strip()
    )
    try:
        return KubernetesConfig(
            namespace=settings.k8s_namespace,
            hub_namespace=settings.k8s_hub_namespace,
            project_image=settings.k8s_project_image,
            project_tag=settings.k8s_project_tag,
            image_pull_policy=settings.k8s_image_pull_policy,
            image_pull_secrets=secrets,
            uid=settings.k8s_project_uid,
            gid=settings.k8s_project_uid,
            storage="pvc" if settings.k8s_storage == "pvc" else "nfs",
            nfs_server=settings.k8s_nfs_server,
            nfs_service=settings.k8s_nfs_service,
            projects_claim=settings.k8s_projects_claim,
            node_selector=node_selector,
            tolerations=tolerations,
        )
    except ValueError as exc:
        raise SettingsError(f"Kubernetes settings: {exc}") from None
