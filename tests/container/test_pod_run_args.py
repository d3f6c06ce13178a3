"""The container kubelet's translation of a project pod into `podman run` arguments (pure,
no podman needed): the pod's security settings, limits and volumes become flags, and a
field it cannot honour is an error, never silently dropped."""

from __future__ import annotations

import copy
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.core.quotas import Quota
from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.manifests import project_pod
from cocalc_k8s.k8s.names import resolved_names
from tests.container.podman import Unsupported, pod_run_args

PID = uuid.UUID(int=7)


def _pod(config: KubernetesConfig, quota: Quota | None = None) -> dict[str, Any]:
    return project_pod(
        PID, quota or Quota(), config, names=resolved_names(PID), cpu_oc=1.0, mem_oc=1.0
    )


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    (tmp_path / "projects" / str(PID)).mkdir(parents=True)
    (tmp_path / "ext").mkdir()
    return tmp_path


def _args(pod: dict[str, Any], storage: Path) -> list[str]:
    return pod_run_args(pod, storage=storage, secret=lambda name, key: str(storage / key))


def _pairs(args: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(args))


def test_security_limits_and_volumes_become_flags(storage: Path) -> None:
    (storage / "token").write_text("t")
    args = _args(_pod(KubernetesConfig(nfs_server="10.0.0.1")), storage)
    pairs = _pairs(args)
    assert ("--user", "2001:2001") in pairs
    assert {"--cap-drop=ALL", "--read-only", "--read-only-tmpfs=false"} <= set(args)
    assert ("--security-opt", "no-new-privileges") in pairs
    assert ("--memory", "2000m") in pairs and ("--cpus", "1.0") in pairs
    assert ("--volume", f"{storage}/projects/{PID}:/home/user:rw") in pairs
    assert ("--volume", f"{storage}/ext:/ext:ro") in pairs
    assert ("--volume", f"{storage}/token:/var/run/cocalc/token/token:ro") not in pairs
    assert ("--volume", f"{storage}/token:/var/run/cocalc/token:ro") in pairs
    # /tmp is the pod's emptyDir, sized by its ephemeral-storage limit
    assert ("--tmpfs", "/tmp:rw,nosuid,nodev,size=5000m,mode=1777") in pairs
    image = args.index("cocalc-k8s-project:0.1.0")
    assert args[image - 2 : image] == ["--entrypoint", '["tini"]']
    assert args[image + 1 : image + 4] == ["--", "sh", "-c"]


def test_the_claim_mode_binds_subpaths(storage: Path) -> None:
    (storage / "token").write_text("t")
    pod = _pod(KubernetesConfig(storage="pvc"), Quota(ext_rw=True))
    pairs = _pairs(_args(pod, storage))
    assert ("--volume", f"{storage}/projects/{PID}:/home/user:rw") in pairs
    assert ("--volume", f"{storage}/ext:/ext:rw") in pairs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(hostNetwork=True), "pod spec fields"),
        (lambda s: s["containers"][0].update(lifecycle={}), "container fields"),
        (lambda s: s["containers"][0]["securityContext"].update(privileged=True), "container"),
        (lambda s: s["securityContext"].update(sysctls=[]), "pod securityContext"),
        (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "volume type"),
        (lambda s: s["containers"][0]["volumeMounts"][0].update(mountPropagation="Bidirectional"),
         "volumeMount fields"),
        (lambda s: s["containers"][0]["env"].append({"name": "X", "valueFrom": {}}), "env X"),
        (lambda s: s["containers"][0]["resources"]["limits"].update({"nvidia.com/gpu": 1}),
         "resources"),
        (lambda s: s.update(restartPolicy="Always"), "restartPolicy"),
    ],
)  # fmt: skip
def test_a_field_it_cannot_honour_is_an_error(storage: Path, change: Any, message: str) -> None:
    (storage / "token").write_text("t")
    pod = copy.deepcopy(_pod(KubernetesConfig(nfs_server="10.0.0.1")))
    change(pod["spec"])
    with pytest.raises(Unsupported, match=message):
        _args(pod, storage)
