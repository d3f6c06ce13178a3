"""Pod Security admission, as the API server applies it to a namespace labelled
`pod-security.kubernetes.io/enforce: baseline|restricted` (the checks of the Pod Security
Standards, "latest" version, that a hub-made pod could meet; the reasons are worded as the
real admission words them, e.g.

    pods "p" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation
    != false (container "agent" must set securityContext.allowPrivilegeEscalation=false)

A test double for the emulated API server, not a complete implementation: AppArmor,
SELinux, procMount and sysctls are not checked (the hub sets none of them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Obj = dict[str, Any]
LEVELS = ("privileged", "baseline", "restricted")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})  # fmt: skip
RESTRICTED_VOLUMES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
})  # fmt: skip
SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


def containers(spec: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _who(names: list[str]) -> str:
    return f"container {_quoted(names)}" if len(names) == 1 else f"containers {_quoted(names)}"


def _failing(spec: Obj, bad: Callable[[Obj], bool]) -> list[str]:
    return [c["name"] for c in containers(spec) if bad(c.get("securityContext") or {})]


def _capabilities(security_context: Obj, which: str) -> list[str]:
    return list((security_context.get("capabilities") or {}).get(which) or [])


def baseline(spec: Obj) -> list[str]:
    reasons: list[str] = []
    hosts = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if hosts:
        reasons.append(f"host namespaces ({', '.join(hosts)})")
    if names := _failing(spec, lambda sc: sc.get("privileged") is True):
        reasons.append(f"privileged ({_who(names)} must not set securityContext.privileged=true)")
    for c in containers(spec):
        added = ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
        extra = [cap for cap in added if cap not in BASELINE_CAPABILITIES]
        if extra:
            reasons.append(
                f'non-default capabilities (container "{c["name"]}" must not include '
                f"{_quoted(extra)} in securityContext.capabilities.add)"
            )
    if host_paths := [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]:
        word = "volume" if len(host_paths) == 1 else "volumes"
        reasons.append(f"hostPath volumes ({word} {_quoted(host_paths)})")
    for c in containers(spec):
        for port in c.get("ports") or []:
            if host_port := port.get("hostPort"):
                reasons.append(f'hostPort (container "{c["name"]}" uses hostPort {host_port})')
    seccomp = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        reasons.append(
            'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'
        )
    return reasons


def restricted(spec: Obj) -> list[str]:
    reasons = baseline(spec)
    pod_sc = spec.get("securityContext") or {}
    bad_volumes = [
        (v["name"], next(k for k in v if k != "name"))
        for v in spec.get("volumes") or []
        if not RESTRICTED_VOLUMES.intersection(v) and "hostPath" not in v
    ]
    if len(bad_volumes) == 1:
        ((name, kind),) = bad_volumes
        reasons.append(
            f'restricted volume types (volume "{name}" uses restricted volume type "{kind}")'
        )
    elif bad_volumes:
        names, kinds = zip(*bad_volumes, strict=True)
        reasons.append(
            f"restricted volume types (volumes {_quoted(list(names))} use restricted volume "
            f"types {_quoted(sorted(set(kinds)))})"
        )
    if names := _failing(spec, lambda sc: sc.get("allowPrivilegeEscalation") is not False):
        reasons.append(
            f"allowPrivilegeEscalation != false ({_who(names)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    if names := _failing(spec, lambda sc: "ALL" not in _capabilities(sc, "drop")):
        reasons.append(
            f"unrestricted capabilities ({_who(names)} must set "
            'securityContext.capabilities.drop=["ALL"])'
        )
    for c in containers(spec):
        extra = [cap for cap in _capabilities(c.get("securityContext") or {}, "add")
                 if cap != "NET_BIND_SERVICE"]  # fmt: skip
        if extra:
            reasons.append(
                f'unrestricted capabilities (container "{c["name"]}" must not include '
                f"{_quoted(extra)} in securityContext.capabilities.add)"
            )
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    if names := _failing(spec, lambda sc: sc.get("runAsNonRoot", pod_non_root) is not True):
        reasons.append(
            f"runAsNonRoot != true (pod or {_who(names)} must set "
            "securityContext.runAsNonRoot=true)"
        )
    if pod_sc.get("runAsUser") == 0:
        reasons.append("runAsUser=0 (pod must not set runAsUser=0)")
    if names := _failing(spec, lambda sc: sc.get("runAsUser") == 0):
        reasons.append(f"runAsUser=0 ({_who(names)} must not set runAsUser=0)")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")

    def seccomp_unset(sc: Obj) -> bool:
        return (sc.get("seccompProfile") or {}).get("type", pod_seccomp) not in SECCOMP_TYPES

    if names := _failing(spec, seccomp_unset):
        reasons.append(
            f"seccompProfile (pod or {_who(names)} must set securityContext.seccompProfile.type "
            'to "RuntimeDefault" or "Localhost")'
        )
    return reasons


def admission_error(pod: Obj, level: str) -> str | None:
    """The API server's refusal of `pod` in a namespace enforcing `level`, or None."""
    check = {"baseline": baseline, "restricted": restricted}.get(level)
    if check is None:
        return None
    reasons = check(pod.get("spec") or {})
    if not reasons:
        return None
    name = (pod.get("metadata") or {}).get("name", "")
    why = ", ".join(reasons)
    return f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": {why}'
