"""Podman for the container tests: whether it works here, the flags every run needs, the
images (built once per session by scripts/build-images.sh), and a pod spec as `podman run`
arguments.

`pod_run_args` is the test kubelet's contract: every field of a project pod's spec is either
honoured by a podman flag or listed as having no effect on one node (scheduling, pulling,
API-server behaviour); anything else raises `Unsupported`, so a new field in the pod
builder fails the container tests until the kubelet learns it, instead of being ignored.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Every container a test session starts carries it: the session removes its own leftovers,
# never another session's.
LABEL = f"cocalc-test-session={os.getpid()}"


class Unsupported(Exception):
    """A pod spec field the test kubelet cannot honour."""


def podman() -> list[str]:
    """The podman command with runc and cgroupfs (crun fails here on rlimits and hybrid
    cgroups); ValueError with the reason when podman cannot run containers here."""
    if shutil.which("podman") is None:
        raise ValueError("podman is not installed (scripts/test.sh installs it as root)")
    command = ["podman"]
    if shutil.which("runc"):
        command += ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
    probe = subprocess.run([*command, "info"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        raise ValueError(f"podman does not work here: {probe.stderr.strip()[-300:]}")
    return command


def limit_flags() -> list[str]:
    """rlimits no higher than this process's: podman's defaults (1048576 files, 4194304
    processes) are above what an unprivileged container init may set here, and runc then
    refuses to start; processes are also capped by pid_max, as conmon's are."""
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    procs = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    procs = pid_max if procs == resource.RLIM_INFINITY else min(procs, pid_max)
    files = 1048576 if files == resource.RLIM_INFINITY else files
    return ["--ulimit", f"nofile={files}:{files}", "--ulimit", f"nproc={procs}:{procs}"]


@dataclass(frozen=True)
class Images:
    hub: str
    project: str


def build_images() -> Images:
    """scripts/build-images.sh (it builds only what changed), niced: the machine is shared."""
    result = subprocess.run(
        ["nice", str(ROOT / "scripts" / "build-images.sh")],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"build-images.sh failed:\n{result.stderr[-4000:]}")
    names = dict(re.findall(r"^(hub|project)=(\S+)$", result.stdout, re.M))
    return Images(hub=names["hub"], project=names["project"])


# Pod spec fields with nothing to do on a single test node, and why.
NO_EFFECT = {
    "nodeName",  # set by the kubelet itself: this node
    "automountServiceAccountToken",  # no service account token exists to mount
    "enableServiceLinks",  # no Services become environment variables here
    "imagePullSecrets",  # images are local
    "nodeSelector",  # one node
    "tolerations",  # one node, no taints
}
VOLUME_TYPES = {"nfs", "persistentVolumeClaim", "emptyDir", "secret"}
CONTAINER_NO_EFFECT = {
    "name",
    "imagePullPolicy",  # images are local
    "ports",  # documentation in Kubernetes too; the pod's IP reaches every port
    "terminationMessagePolicy",  # the kubelet reports the exit code and reason itself
    "readinessProbe",  # checked by the kubelet (TestKubelet._ready), not by podman
}


def pod_run_args(
    pod: dict[str, Any], *, storage: Path, secret: Callable[[str, str], str]
) -> list[str]:
    """`podman run` arguments (after `run`, before nothing: the image and command are
    included) for the single container of `pod`. `storage` is the directory the NFS export
    and the projects' claim both serve (the hub's data directory); `secret(name, key)` is
    the path of a file holding that Secret key. Raises Unsupported."""
    spec = dict(pod["spec"])
    (container,) = spec.pop("containers")
    args = ["--detach", "--name", pod["metadata"]["name"], "--label", LABEL, *limit_flags()]
    args += _pod_security(spec.pop("securityContext", {}))
    if spec.pop("restartPolicy", "Never") != "Never":
        raise Unsupported("restartPolicy other than Never")
    spec.pop("terminationGracePeriodSeconds", None)  # used by the kubelet's `podman stop -t`
    volumes = {v["name"]: v for v in spec.pop("volumes", [])}
    for volume in volumes.values():  # declared ones too, mounted or not
        if not set(volume) - {"name"} <= VOLUME_TYPES:
            raise Unsupported(f"volume type {sorted(set(volume) - {'name'})}")
    for key in NO_EFFECT:
        spec.pop(key, None)
    if spec:
        raise Unsupported(f"pod spec fields {sorted(spec)}")
    return args + _container(container, volumes, storage=storage, secret=secret)


def _pod_security(sc: dict[str, Any]) -> list[str]:
    sc = dict(sc)
    uid, gid = sc.pop("runAsUser", None), sc.pop("runAsGroup", None)
    if uid is None or gid is None:
        raise Unsupported("a pod without runAsUser and runAsGroup (the image's user)")
    if sc.pop("runAsNonRoot", False) and uid == 0:
        raise Unsupported("runAsNonRoot with uid 0")
    args = ["--user", f"{uid}:{gid}"]
    if (fs_group := sc.pop("fsGroup", None)) is not None:
        args += ["--group-add", str(fs_group)]  # Secret files are root:fsGroup (TestKubelet)
    sc.pop("fsGroupChangePolicy", None)  # the kubelet writes the Secret files with fsGroup
    if sc.pop("seccompProfile", {"type": "RuntimeDefault"}) != {"type": "RuntimeDefault"}:
        raise Unsupported("a seccomp profile other than RuntimeDefault (podman's default)")
    if sc:
        raise Unsupported(f"pod securityContext fields {sorted(sc)}")
    return args


def _container(
    c: dict[str, Any],
    volumes: dict[str, dict[str, Any]],
    *,
    storage: Path,
    secret: Callable[[str, str], str],
) -> list[str]:
    c = dict(c)
    args = _container_security(c.pop("securityContext", {}))
    for env in c.pop("env", []):
        if set(env) != {"name", "value"}:
            raise Unsupported(f"env {env['name']} from a source ({sorted(env)})")
        args += ["--env", f"{env['name']}={env['value']}"]
    if "workingDir" in c:
        args += ["--workdir", c.pop("workingDir")]
    args += _resources(c.pop("resources", {}), volumes)
    args += _mounts(c.pop("volumeMounts", []), volumes, storage=storage, secret=secret)
    command = c.pop("command", None)
    if command is not None:
        args += ["--entrypoint", json.dumps(command[:1])]
    image = c.pop("image")
    tail = [*(command[1:] if command else []), *c.pop("args", [])]
    for key in CONTAINER_NO_EFFECT:
        c.pop(key, None)
    if c:
        raise Unsupported(f"container fields {sorted(c)}")
    return [*args, image, *tail]


def _container_security(sc: dict[str, Any]) -> list[str]:
    sc = dict(sc)
    args = []
    if sc.pop("allowPrivilegeEscalation", True) is False:
        args += ["--security-opt", "no-new-privileges"]
    capabilities = sc.pop("capabilities", {})
    if set(capabilities) - {"drop", "add"}:
        raise Unsupported(f"capabilities {sorted(capabilities)}")
    args += [f"--cap-drop={cap}" for cap in capabilities.get("drop", [])]
    args += [f"--cap-add={cap}" for cap in capabilities.get("add", [])]
    if sc.pop("readOnlyRootFilesystem", False):
        # podman's --read-only adds tmpfs on /tmp, /var/tmp and /run by itself; a pod has
        # only the volumes it declares.
        args += ["--read-only", "--read-only-tmpfs=false"]
    sc.pop("runAsNonRoot", None)  # checked with the pod's runAsUser
    if sc:
        raise Unsupported(f"container securityContext fields {sorted(sc)}")
    return args


def _resources(resources: dict[str, Any], volumes: dict[str, dict[str, Any]]) -> list[str]:
    # Requests only place pods on nodes; limits are enforced. The ephemeral-storage limit
    # bounds what the pod writes outside its volumes' storage: with a read-only root that
    # is its emptyDirs, so they become tmpfs of that size (_mounts).
    limits = dict(resources.get("limits", {}))
    args = []
    if "cpu" in limits:
        args += ["--cpus", str(_cpu(limits.pop("cpu")))]
    if "memory" in limits:
        memory = _mebibytes(limits.pop("memory"))
        args += ["--memory", f"{memory}m", "--memory-swap", f"{memory}m"]
    if "ephemeral-storage" in limits:
        size = _mebibytes(limits.pop("ephemeral-storage"))
        for volume in volumes.values():
            if "emptyDir" in volume:
                volume["emptyDir"] = {**volume["emptyDir"], "sizeLimit": f"{size}Mi"}
    if limits or set(resources) - {"limits", "requests"}:
        raise Unsupported(f"resources {resources}")
    return args


def _mounts(
    mounts: list[dict[str, Any]],
    volumes: dict[str, dict[str, Any]],
    *,
    storage: Path,
    secret: Callable[[str, str], str],
) -> list[str]:
    args = []
    for mount in mounts:
        mount = dict(mount)
        volume = dict(volumes[mount.pop("name")])
        volume.pop("name")
        target = mount.pop("mountPath")
        read_only = mount.pop("readOnly", False)
        sub_path = mount.pop("subPath", "")
        if mount:
            raise Unsupported(f"volumeMount fields {sorted(mount)}")
        ((kind, source),) = volume.items()
        if kind == "nfs":
            # The export's root is the storage; the kubelet mounts it, so the server is
            # only checked to be set.
            assert source["server"] and not sub_path
            path = storage / source["path"].lstrip("/")
            read_only = read_only or source.get("readOnly", False)
            args += _bind(path, target, read_only=read_only)
        elif kind == "persistentVolumeClaim":
            args += _bind(storage / sub_path, target, read_only=read_only)
        elif kind == "emptyDir":
            if set(source) - {"sizeLimit"} or sub_path:
                raise Unsupported(f"emptyDir {source}")
            size = source.get("sizeLimit", "")
            options = f"rw,nosuid,nodev,size={_mebibytes(size)}m" if size else "rw,nosuid,nodev"
            args += ["--tmpfs", f"{target}:{options},mode=1777"]
        elif kind == "secret":
            items = source.get("items") or []
            if set(source) - {"secretName", "items", "defaultMode"} or sub_path:
                raise Unsupported(f"secret volume {source}")
            for item in items:
                path = secret(source["secretName"], item["key"])
                args += _bind(Path(path), f"{target}/{item['path']}", read_only=True)
        else:
            raise Unsupported(f"volume type {kind}")
    return args


def _bind(path: Path, target: str, *, read_only: bool) -> list[str]:
    if not path.exists():
        raise Unsupported(f"a volume whose source {path} does not exist")
    return ["--volume", f"{path}:{target}:{'ro' if read_only else 'rw'}"]


def _cpu(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _mebibytes(quantity: str) -> int:
    units = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity) // 2**20


def remove_test_containers(command: list[str]) -> None:
    """Remove every container the tests started (a crashed run leaves them behind)."""
    listed = subprocess.run(
        [*command, "ps", "-aq", "--filter", f"label={LABEL}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    ids = listed.stdout.split()
    if ids:
        subprocess.run([*command, "rm", "-f", "-t", "0", *ids], capture_output=True, timeout=120)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))
