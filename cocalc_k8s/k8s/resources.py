"""A project pod's resources: limits from its quota, requests from the site's over-commit.

    limit   = the quota (cpu in cores, memory_mb and disk_mb in MiB)
    request = limit / over-commit ratio, rounded up, but never below the site's floor and
              never above the limit (Kubernetes rejects request > limit)

The disk quota becomes the ephemeral-storage limit (the container's writable layer, /tmp,
its logs): homes live on NFS or a claim, so the request reserves only a small floor.
"""

from __future__ import annotations

import math
from typing import Any

from cocalc_k8s.core.quotas import Quota
from cocalc_k8s.k8s.config import KubernetesConfig


def request_from_limit(limit: int, ratio: float, floor: int) -> int:
    """ceil(limit / ratio), raised to `floor`, capped at `limit`."""
    if ratio < 1:
        raise ValueError("an over-commit ratio is at least 1")
    return min(limit, max(floor, math.ceil(limit / ratio)))


def project_resources(
    quota: Quota, config: KubernetesConfig, *, cpu_oc: float, mem_oc: float
) -> dict[str, Any]:
    """The container's `resources`; quantities in millicores and MiB, as strings."""
    cpu = max(1, round(quota.cpu * 1000))
    memory = quota.memory_mb
    disk = quota.disk_mb
    return {
        "limits": {
            "cpu": f"{cpu}m",
            "memory": f"{memory}Mi",
            "ephemeral-storage": f"{disk}Mi",
        },
        "requests": {
            "cpu": f"{request_from_limit(cpu, cpu_oc, config.min_cpu_request_millicores)}m",
            "memory": f"{request_from_limit(memory, mem_oc, config.min_memory_request_mb)}Mi",
            "ephemeral-storage": f"{min(disk, config.min_disk_request_mb)}Mi",
        },
    }
