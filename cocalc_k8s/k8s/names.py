"""Names and labels of a project's Kubernetes objects.

Names are *resolved once* and stored on the project (`projects.resolved`): a later change
of naming scheme then applies to new projects only and never hides a user's files or
orphans a running pod (kubespawner's lesson).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypedDict

from cocalc_k8s.k8s.config import KubernetesConfig

APP_LABELS: Mapping[str, str] = {
    "app.kubernetes.io/name": "cocalc",
    "app.kubernetes.io/managed-by": "cocalc-hub",
}
PROJECT_SELECTOR = "run=project"
"""Label selector of every project pod (the hub's one watch)."""


class ResolvedNames(TypedDict):
    pod: str
    """The pod's name."""
    token_secret: str
    """The Secret holding the agent's token, mounted into the pod."""
    home_subpath: str
    """The home inside the projects' storage: NFS path '/<it>' or the claim's subPath."""
    ext_subpath: str
    """The shared software directory inside the projects' storage."""


def resolved_names(project_id: uuid.UUID, stored: Mapping[str, Any] | None = None) -> ResolvedNames:
    """The names this project uses: the stored ones, the current scheme for the rest.

    Store the result when it differs from `stored`."""
    names: ResolvedNames = {
        "pod": f"project-{project_id}",
        "token_secret": f"project-{project_id}-token",
        "home_subpath": f"projects/{project_id}",
        "ext_subpath": "ext",
    }
    for key in names:
        value = (stored or {}).get(key)
        if isinstance(value, str) and value:
            names[key] = value  # type: ignore[literal-required]
    return names


def project_labels(
    project_id: uuid.UUID, config: KubernetesConfig, *, network: bool
) -> dict[str, str]:
    """Labels of a project pod. `network` ("true"/"false") is what the NetworkPolicies
    select: only pods labelled "true" may reach the internet, so a pod without the label
    fails closed (DNS only)."""
    return {
        "run": "project",
        "project_id": str(project_id),
        "project_tag": config.project_tag,
        "network": "true" if network else "false",
        **APP_LABELS,
        "app.kubernetes.io/component": "project",
        "app.kubernetes.io/version": config.project_tag,
    }


def token_secret_labels(project_id: uuid.UUID) -> dict[str, str]:
    """Labels of a project's token Secret (not `run=project`: the pod watch ignores it)."""
    return {
        "project_id": str(project_id),
        **APP_LABELS,
        "app.kubernetes.io/component": "project-token",
    }
