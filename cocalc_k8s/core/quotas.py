"""Project quotas: the limits one project runs with, and the site's defaults.

A project stores only what differs from the defaults (its `quota` column); the effective
quota is the defaults overlaid with those values. `cpu_oc` and `mem_oc` are over-commit
ratios of the site, not of a project: the Kubernetes backend derives requests from limits
with them (request = limit / ratio).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from cocalc_k8s.core.errors import BadRequest


@dataclass(frozen=True, kw_only=True)
class Quota:
    memory_mb: int = 2000
    """Memory limit of the project's processes, in MB."""
    cpu: float = 1.0
    """CPU limit, in cores."""
    disk_mb: int = 5000
    """Disk space of the home directory, in MB (ephemeral storage in Kubernetes)."""
    idle_timeout: int = 3600
    """Seconds without activity after which a running project is stopped."""
    always_running: bool = False
    """Never stopped for idleness; started again when it stops."""
    network: bool = True
    """Outbound internet access (DNS only when false)."""
    ext_rw: bool = False
    """Mount the shared /ext software directory read-write (Kubernetes)."""


@dataclass(frozen=True, kw_only=True)
class DefaultQuotas(Quota):
    cpu_oc: float = 10.0
    """CPU over-commit: a project's CPU request is its limit divided by this."""
    mem_oc: float = 5.0
    """Memory over-commit: a project's memory request is its limit divided by this."""


_BOUNDS: dict[str, tuple[float, float]] = {
    "memory_mb": (64, 1_000_000),
    "cpu": (0.05, 256),
    "disk_mb": (10, 100_000_000),
    "idle_timeout": (60, 365 * 86400),
    "cpu_oc": (1, 100),
    "mem_oc": (1, 100),
}


def validate_quota(values: Any, *, site: bool = False) -> dict[str, Any]:
    """Check a (partial) quota given by an admin; returns it with the right types."""
    if not isinstance(values, dict):
        raise BadRequest("quota must be an object")
    known = {f.name: f for f in fields(DefaultQuotas if site else Quota)}
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise BadRequest(f"unknown quota field {name!r}")
        kind = known[name].type
        if kind in ("bool", bool):
            if not isinstance(value, bool):
                raise BadRequest(f"quota field {name} must be true or false")
            clean[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"quota field {name} must be a number")
        low, high = _BOUNDS[name]
        if not low <= value <= high:
            raise BadRequest(f"quota field {name} must be between {low:g} and {high:g}")
        clean[name] = int(value) if kind in ("int", int) else float(value)
    return clean


def effective_quota(defaults: dict[str, Any], project: dict[str, Any]) -> Quota:
    """The quota a project runs with: built-in defaults < site defaults < its own values."""
    merged = {**asdict(Quota()), **_only_quota(defaults), **_only_quota(project)}
    return Quota(**merged)


def _only_quota(values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(Quota)}
    return {k: v for k, v in values.items() if k in names}
