"""RBAC as the API server evaluates it, for one subject (the hub's service account), from
the Role, ClusterRole, RoleBinding and ClusterRoleBinding objects of the manifests. A test
double for the emulated API server: rules with apiGroups, resources (with subresources),
verbs and resourceNames; aggregation and non-resource URLs are not modelled.

    RoleBinding in N -> its Role (in N) or ClusterRole, in namespace N only
    ClusterRoleBinding -> its ClusterRole, in every namespace and at the cluster scope
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str  # plural, "pods/log" for a subresource
    namespace: str | None  # None: cluster-scoped
    name: str | None = None
    group: str = ""


@dataclass
class Rbac:
    user: str
    """e.g. system:serviceaccount:cocalc:cocalc-hub"""
    grants: list[tuple[str | None, list[Obj]]] = field(default_factory=list)
    """(namespace or None for every one, rules)."""

    @classmethod
    def from_manifests(cls, docs: Iterable[Obj], *, namespace: str, service_account: str) -> Rbac:
        docs = [d for d in docs if d]
        roles = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d.get("rules") or []
                 for d in docs if d["kind"] == "Role"}  # fmt: skip
        cluster_roles = {d["metadata"]["name"]: d.get("rules") or []
                         for d in docs if d["kind"] == "ClusterRole"}  # fmt: skip
        rbac = cls(f"system:serviceaccount:{namespace}:{service_account}")
        for doc in docs:
            if doc["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            subjects = doc.get("subjects") or []
            if not any(s.get("kind") == "ServiceAccount" and s.get("name") == service_account
                       and s.get("namespace") == namespace for s in subjects):  # fmt: skip
                continue
            ref = doc["roleRef"]
            where = doc["metadata"].get("namespace") if doc["kind"] == "RoleBinding" else None
            if ref["kind"] == "Role":
                rules = roles.get((where, ref["name"]), [])
            else:
                rules = cluster_roles.get(ref["name"], [])
            rbac.grants.append((where, rules))
        return rbac

    def allows(self, request: Request) -> bool:
        for where, rules in self.grants:
            if where is not None and where != request.namespace:
                continue
            if any(_rule_allows(rule, request) for rule in rules):
                return True
        return False

    def refusal(self, request: Request) -> str:
        """The API server's 403 message."""
        what = f'{request.resource} "{request.name}"' if request.name else request.resource
        where = (f'in the namespace "{request.namespace}"' if request.namespace is not None
                 else "at the cluster scope")  # fmt: skip
        return (f'{what} is forbidden: User "{self.user}" cannot {request.verb} resource '
                f'"{request.resource}" in API group "{request.group}" {where}')  # fmt: skip


def _rule_allows(rule: Obj, request: Request) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return value in values or "*" in values

    if not (has("apiGroups", request.group) and has("resources", request.resource)
            and has("verbs", request.verb)):  # fmt: skip
        return False
    names = rule.get("resourceNames") or []
    return not names or (request.name is not None and request.name in names)
