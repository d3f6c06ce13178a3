"""Project pods and their token Secrets as plain dicts: pure functions, no I/O, no client.

**The agent's token** never appears in the pod spec. The hub generates a fresh one per
start and puts it in a per-project Secret (`project_token_secret`), mounted at
/var/run/cocalc/token as `root:<gid>` mode 0440 (the pod's fsGroup): only the project's
uid can read it. The container opens the file as descriptor 3 and execs the agent with
`--token-fd 3`; the agent reads the line and closes the descriptor, so the token is in
neither its arguments nor its environment. Create the pod first, then the Secret with
`owner=(pod name, pod uid)` from the create answer: the kubelet retries the mount until the
Secret exists (milliseconds later), and Kubernetes garbage-collects the Secret with the
pod, so a crashed hub leaves no token behind. (Handing the token over on the first request
would trust whoever connects first; an env var would show it to anyone who can read pods.)

**Readiness** is a tcpSocket probe on the agent's port: the agent listens only once it has
its token and its app, and every HTTP route (including /health) demands the token, which
the kubelet does not have. No liveness probe: a busy project must not be killed for being
slow to answer.

**Restarts**: `restartPolicy: Never`. A crash or an OOM kill of the agent ends the pod, the
hub's watch sees the reason and the project becomes `failed`; the hub decides what restarts.
The container runs `tini` as PID 1 so that orphaned user processes are reaped.
"""

from __future__ import annotations

import shlex
import uuid
from typing import Any

from cocalc_k8s.core.quotas import Quota
from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.names import ResolvedNames, project_labels, token_secret_labels
from cocalc_k8s.k8s.resources import project_resources
from cocalc_k8s.k8s.volumes import TOKEN_FILE, project_volumes

CONTAINER = "agent"


def agent_command(config: KubernetesConfig) -> list[str]:
    """The container's command: tini, then a shell that opens the token file as fd 3."""
    script = (
        f"exec {shlex.quote(config.agent_python)} -m cocalc_k8s.agent "
        f"--home {shlex.quote(config.home)} "
        f"--host 0.0.0.0 --port {config.agent_port} --token-fd 3 3<{TOKEN_FILE}"
    )
    return ["tini", "--", "sh", "-c", script]


def project_pod(
    project_id: uuid.UUID,
    quota: Quota,
    config: KubernetesConfig,
    *,
    names: ResolvedNames,
    cpu_oc: float,
    mem_oc: float,
) -> dict[str, Any]:
    """The pod of a project: see the module docstring for the token, probe and restarts."""
    volumes, mounts = project_volumes(names, config, ext_rw=quota.ext_rw)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": agent_command(config),
        "workingDir": config.home,
        "env": [
            {"name": "HOME", "value": config.home},
            {"name": "COCALC_PROJECT_ID", "value": str(project_id)},
        ],
        "ports": [{"name": "agent", "containerPort": config.agent_port, "protocol": "TCP"}],
        "resources": project_resources(quota, config, cpu_oc=cpu_oc, mem_oc=mem_oc),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "readinessProbe": {
            "tcpSocket": {"port": "agent"},
            "periodSeconds": 1,
            "failureThreshold": 3,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": config.termination_grace_seconds,
        "securityContext": {
            "runAsUser": config.uid,
            "runAsGroup": config.gid,
            "runAsNonRoot": True,
            "fsGroup": config.gid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in config.image_pull_secrets]
    if config.node_selector:
        spec["nodeSelector"] = dict(config.node_selector)
    if config.tolerations:
        spec["tolerations"] = [dict(toleration) for toleration in config.tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names["pod"],
            "namespace": config.namespace,
            "labels": project_labels(project_id, config, network=quota.network),
        },
        "spec": spec,
    }


def project_token_secret(
    project_id: uuid.UUID,
    token: str,
    config: KubernetesConfig,
    *,
    names: ResolvedNames,
    owner: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The Secret the pod mounts its agent token from; `owner` = (pod name, pod uid) makes
    Kubernetes delete it with the pod. Never log the result: it holds the token."""
    metadata: dict[str, Any] = {
        "name": names["token_secret"],
        "namespace": config.namespace,
        "labels": token_secret_labels(project_id),
    }
    if owner is not None:
        name, uid = owner
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": metadata,
        "stringData": {"token": token},
    }
