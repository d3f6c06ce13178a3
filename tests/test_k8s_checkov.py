"""checkov (Prisma Cloud's policy scanner) on the files an admin applies: deployment.yaml,
nfs-service.yaml and the optional prepull-untaint.yaml pass every Kubernetes check except
the ones skipped on purpose, and those are exactly the reviewed list below (a new skip
annotation needs a review here).
The objects the hub generates (project pods of both storage modes, the token Secret, the
export's PersistentVolume),
rendered to YAML and scanned next to deployment.yaml's NetworkPolicies, fail only the
reviewed checks of POD_FINDINGS.

checkov pins old versions of libraries the package uses (packaging, python-dateutil), so
it lives in a virtualenv of its own, `.venv-checkov` (scripts/test.sh makes it), or
wherever COCALC_CHECKOV points. Offline: `--skip-download`, and a proxy on a closed
loopback port, so any attempt to reach the network fails here instead of leaving.
Skipped without checkov, except under CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from cocalc_k8s.core.quotas import Quota
from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.manifests import project_pod, project_token_secret
from cocalc_k8s.k8s.names import resolved_names
from cocalc_k8s.k8s.storage import nfs_volume

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ("deployment.yaml", "nfs-service.yaml", "prepull-untaint.yaml")
TIMEOUT = 300

# (check, resource): why each stays is its checkov.io/skip annotation in deployment.yaml.
REVIEWED_SKIPS = {
    ("CKV_K8S_23", "Deployment.cocalc.cocalc-hub"),  # the nfs container runs as root
    ("CKV_K8S_25", "Deployment.cocalc.cocalc-hub"),  # ... with the capabilities it needs
    ("CKV_K8S_40", "Deployment.cocalc.cocalc-hub"),  # uid 2001, the projects' uid
    ("CKV_K8S_35", "Deployment.cocalc.cocalc-hub"),  # DATABASE_URL from an optional Secret
    ("CKV_K8S_43", "Deployment.cocalc.cocalc-hub"),  # tags, not digests: the admin's images
    ("CKV_K8S_43", "DaemonSet.cocalc-projects.cocalc-prepull"),  # the project image's tag
    ("CKV_K8S_8", "DaemonSet.cocalc-projects.cocalc-prepull"),  # a pause process: no probe
    ("CKV_K8S_9", "DaemonSet.cocalc-projects.cocalc-prepull"),  # ... serves nothing
    ("CKV_K8S_43", "DaemonSet.cocalc-projects.cocalc-prepull-untaint"),  # the same, for the
    ("CKV_K8S_8", "DaemonSet.cocalc-projects.cocalc-prepull-untaint"),  # optional taint
    ("CKV_K8S_9", "DaemonSet.cocalc-projects.cocalc-prepull-untaint"),  # scheme's variant
}

# What checkov reports on every generated project pod, and why it stays.
POD_FINDINGS = {
    "CKV_K8S_43": "images by tag (COCALC_K8S_PROJECT_TAG, the pods' project_tag label)",
    "CKV_K8S_15": "IfNotPresent: the project image is large; a new tag is a new name",
    "CKV_K8S_40": "uid 2001 owns every home; a higher uid would mean chowning them all",
    "CKV_K8S_8": "no liveness probe: a restart by the kubelet would kill the user's processes",
}


def _checkov() -> str:
    for candidate in (
        os.environ.get("COCALC_CHECKOV"),
        str(ROOT / ".venv-checkov" / "bin" / "checkov"),
        shutil.which("checkov"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = "checkov is missing (scripts/test.sh installs it into .venv-checkov)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _scan(*files: str) -> dict[str, Any]:
    """checkov's JSON report of the Kubernetes framework for `files`."""
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    env = {**os.environ, "https_proxy": closed, "http_proxy": closed, "no_proxy": ""}
    env.pop("BC_API_KEY", None)
    command = [_checkov(), "--skip-download", "--framework", "kubernetes", "-o", "json"]
    for name in files:
        command += ["-f", name]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: findings
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    (report,) = [r for r in reports if r["check_type"] == "kubernetes"]
    return report  # type: ignore[no-any-return]


def test_the_manifests_pass_checkov_but_for_the_reviewed_skips() -> None:
    report = _scan(*MANIFESTS)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] >= 20  # every object was read
    failed = [
        (c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    skipped = {(c["check_id"], c["resource"]) for c in report["results"]["skipped_checks"]}
    assert skipped == REVIEWED_SKIPS
    for check in report["results"]["skipped_checks"]:
        assert len(check["check_result"]["suppress_comment"]) > 20, check["check_id"]


def test_checkov_finds_what_the_manifests_avoid(tmp_path: Path) -> None:
    """The scan is real: the hub Deployment without its CPU limit and its skips fails."""
    deployment = (ROOT / "deployment.yaml").read_text()
    weakened = deployment.replace('              cpu: "4"\n', "")
    weakened = "\n".join(line for line in weakened.splitlines() if "checkov.io/skip" not in line)
    assert weakened != deployment
    (tmp_path / "deployment.yaml").write_text(weakened)
    report = _scan(str(tmp_path / "deployment.yaml"))
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert {"CKV_K8S_11"} | {check for check, _ in REVIEWED_SKIPS} <= failed


def test_the_pods_the_hub_generates_fail_only_the_reviewed_checks(tmp_path: Path) -> None:
    project = uuid.UUID(int=1)
    names = resolved_names(project)
    nfs = project_pod(
        project, Quota(), KubernetesConfig(nfs_server="10.96.0.42"), names=names,
        cpu_oc=1.0, mem_oc=1.0,
    )  # fmt: skip
    pvc = project_pod(
        project, Quota(network=False), KubernetesConfig(storage="pvc"), names=names,
        cpu_oc=1.0, mem_oc=1.0,
    )  # fmt: skip
    pvc["metadata"]["name"] += "-pvc"  # two resources, not one
    secret = project_token_secret(project, "t" * 43, KubernetesConfig(), names=names)
    rendered = tmp_path / "generated.yaml"
    volume = nfs_volume(KubernetesConfig(), "10.96.0.42")
    rendered.write_text(yaml.safe_dump_all([nfs, pvc, secret, volume]))
    report = _scan(str(rendered), "deployment.yaml")  # the policies select the pods
    pods = {f"Pod.{p['metadata']['namespace']}.{p['metadata']['name']}" for p in (nfs, pvc)}
    generated = [c for c in report["results"]["failed_checks"] if c["resource"] in pods]
    assert {(c["check_id"], c["resource"]) for c in generated} == {
        (check, pod) for check in POD_FINDINGS for pod in pods
    }
    others = [c for c in report["results"]["failed_checks"] if c["resource"] not in pods]
    assert [(c["check_id"], c["resource"]) for c in others] == []  # Secret and volume included
