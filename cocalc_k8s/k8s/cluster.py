"""Project pods on a cluster: what the Kubernetes backend asks of Kubernetes.

One reflector watches every project pod (label `run=project`) and one watches the
namespace's pod Events (for progress messages); `status()` answers from the cache.
`create` makes the pod, then its token Secret owned by the pod (see `manifests`); both
are idempotent, so a retried or repeated start adopts what already runs. The resolved
names go on the pod as an annotation, so that a hub which restarts finds the Secret of an
adopted pod and reads its token back.

**Only its own objects.** RBAC cannot narrow the hub's Secret (or pod) rights to the names
it makes (they are per project, and rules take no label selector), so the hub checks the
labels itself: a Secret or pod that does not carry the project's labels (`_ours`) is never
read for a token, adopted, replaced or deleted, whatever its name.

'nfs' storage: before the first pod, the hub makes sure the PersistentVolume of its export
exists (`storage.nfs_volume`, from the NFS Service's cluster IP in the hub's namespace).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from cocalc_k8s.core.quotas import Quota
from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.gateway import KubernetesError, KubernetesGateway
from cocalc_k8s.k8s.manifests import project_pod, project_token_secret
from cocalc_k8s.k8s.names import APP_LABELS, PROJECT_SELECTOR, ResolvedNames, resolved_names
from cocalc_k8s.k8s.pod_status import PodStatus, pod_status
from cocalc_k8s.k8s.reflector import Object, Reflector
from cocalc_k8s.k8s.storage import nfs_volume, volume_server

NAMES_ANNOTATION = "cocalc.io/resolved-names"
EVENT_SELECTOR = "involvedObject.kind=Pod"

PodCallback = Callable[[uuid.UUID, PodStatus | None], None]
EventCallback = Callable[[uuid.UUID, str, str], None]


class ProjectCluster:
    def __init__(
        self, gateway: KubernetesGateway, config: KubernetesConfig, *, quiet: float = 60.0
    ) -> None:
        self.gateway = gateway
        self.config = config
        self._by_name: dict[str, PodStatus] = {}
        self._by_project: dict[uuid.UUID, str] = {}
        # Pods being created: their Events may arrive before the pod watch reports them.
        self._creating: dict[str, uuid.UUID] = {}
        self._volume_ready = False
        self._pod_callbacks: list[PodCallback] = []
        self._event_callbacks: list[EventCallback] = []
        self.pods = Reflector(
            gateway, "pod", on_change=self._pod_changed, label_selector=PROJECT_SELECTOR,
            quiet=quiet, trim=_trim_pod,
        )  # fmt: skip
        self.events = Reflector(
            gateway, "event", on_change=self._event_seen, field_selector=EVENT_SELECTOR,
            cache=False, key=_event_key, quiet=quiet,
        )  # fmt: skip

    # -- the cache --------------------------------------------------------------------

    async def open(self) -> None:
        self.pods.start()
        self.events.start()

    async def close(self) -> None:
        await self.events.stop()
        await self.pods.stop()
        await self.gateway.close()

    async def loaded(self) -> None:
        await self.pods.first_load

    def on_pod(self, callback: PodCallback) -> None:
        self._pod_callbacks.append(callback)

    def on_event(self, callback: EventCallback) -> None:
        self._event_callbacks.append(callback)

    def status(self, project_id: uuid.UUID) -> PodStatus | None:
        name = self._by_project.get(project_id)
        return self._by_name.get(name) if name else None

    def project_ids(self) -> set[uuid.UUID]:
        return set(self._by_project)

    @property
    def project_tag(self) -> str:
        """The project image tag new pods get."""
        return self.config.project_tag

    def _pod_changed(self, name: str, pod: Object | None) -> None:
        status = pod_status(pod, agent_port=self.config.agent_port) if pod else None
        old = self._by_name.pop(name, None)
        if old is not None and self._by_project.get(old.project_id) == name:
            del self._by_project[old.project_id]
        self._creating.pop(name, None)
        if status is not None:
            self._by_name[name] = status
            self._by_project[status.project_id] = name
        project_id = status.project_id if status else old.project_id if old else None
        if project_id is not None:
            for callback in self._pod_callbacks:
                callback(project_id, status)

    def _event_seen(self, key: str, event: Object | None) -> None:
        name = ((event or {}).get("involvedObject") or {}).get("name", "")
        status = self._by_name.get(name)
        project_id = status.project_id if status else self._creating.get(name)
        if event is None or project_id is None:
            return
        for callback in self._event_callbacks:
            callback(project_id, event.get("reason", ""), event.get("message", ""))

    # -- changes ----------------------------------------------------------------------

    async def create(
        self,
        project_id: uuid.UUID,
        quota: Quota,
        token: str,
        *,
        cpu_oc: float,
        mem_oc: float,
        stored: Mapping[str, Any] | None = None,
    ) -> tuple[str, ResolvedNames]:
        """Create (or adopt) the project's pod and token Secret: the token in use, and the
        names used (the `stored` ones first; the caller stores what is new).
        `cpu_oc`/`mem_oc`: the site's over-commit ratios (requests = limits / ratio)."""
        names = resolved_names(project_id, stored)
        await self._storage()
        config = self.config
        pod = project_pod(project_id, quota, config, names=names, cpu_oc=cpu_oc, mem_oc=mem_oc)
        pod["metadata"]["annotations"] = {NAMES_ANNOTATION: json.dumps(names, sort_keys=True)}
        self._creating[names["pod"]] = project_id  # until the pod watch reports it

        def replace_pod(old: Object) -> bool:
            _refuse_foreign(old, project_id)
            return self._finished(old)

        try:
            created = await self.gateway.create("pod", pod, replace_if=replace_pod)
        except BaseException:
            self._creating.pop(names["pod"], None)
            raise
        _refuse_foreign(created, project_id)  # adopted on 409: it must be this project's
        uid: str = created["metadata"]["uid"]
        secret = project_token_secret(
            project_id, token, config, names=names, owner=(names["pod"], uid)
        )

        def replace_secret(old: Object) -> bool:
            _refuse_foreign(old, project_id)
            return _owner_uid(old) != uid

        stored = await self.gateway.create("secret", secret, replace_if=replace_secret)
        return _token(stored) or token, names

    async def delete(self, project_id: uuid.UUID) -> None:
        """Delete the pod (its Secret goes with it); nothing to delete is fine."""
        name = self._by_project.get(project_id) or resolved_names(project_id)["pod"]
        await self.gateway.delete("pod", name)

    async def read_token(self, project_id: uuid.UUID) -> str | None:
        """The token of the running pod, from its Secret (after a hub restart)."""
        pod = self.pods.objects.get(self._by_project.get(project_id, ""))
        if pod is None:
            return None
        annotations = pod["metadata"].get("annotations") or {}
        stored = json.loads(annotations.get(NAMES_ANNOTATION) or "{}")
        names: ResolvedNames = resolved_names(project_id, stored)
        secret = await self.gateway.get("secret", names["token_secret"])
        if secret is None or not _ours(secret, project_id):
            return None  # not the hub's Secret: its content is none of the hub's business
        return _token(secret)

    def _finished(self, pod: Any) -> bool:
        status = pod_status(pod, agent_port=self.config.agent_port)
        return status is None or status.state in ("stopping", "stopped", "failed")

    async def _storage(self) -> None:
        """'nfs' storage: the NFS Service's cluster IP (once) and the PersistentVolume of
        the export (created if missing; one naming another server is an error to fix by
        hand: a bound volume's source cannot change under running pods)."""
        if self.config.storage != "nfs" or self._volume_ready:
            return
        if not self.config.nfs_server:
            service = await self.gateway.get(
                "service", self.config.nfs_service, namespace=self.config.hub_namespace
            )
            ip = ((service or {}).get("spec") or {}).get("clusterIP")
            if not ip or ip == "None":
                raise LookupError(f"the NFS Service {self.config.nfs_service} has no cluster IP")
            self.config = dataclasses.replace(self.config, nfs_server=ip)
        server = self.config.nfs_server
        assert server is not None
        # Read first: an admin may have made the volume and taken the hub's `create` away.
        volume = await self.gateway.get("persistent_volume", self.config.nfs_volume)
        if volume is None:
            volume = await self.gateway.create("persistent_volume", nfs_volume(self.config, server))
        if volume_server(volume) != server:
            raise LookupError(
                f"the PersistentVolume {self.config.nfs_volume} mounts "
                f"{volume_server(volume)}, not the NFS Service at {server}: delete it once no "
                "project runs (the hub makes it again)"
            )
        self._volume_ready = True


def _trim_pod(pod: Object) -> Object:
    """What `pod_status` and `read_token` read: the metadata (less managedFields) and
    the status; the spec is ours and is not needed again."""
    metadata = {k: v for k, v in (pod.get("metadata") or {}).items() if k != "managedFields"}
    return {"metadata": metadata, "status": pod.get("status") or {}}


def _event_key(event: Object) -> str | None:
    metadata = event.get("metadata") or {}
    return metadata.get("uid") or metadata.get("name")


def _ours(obj: Object, project_id: uuid.UUID) -> bool:
    """Whether the hub made `obj` for this project (the labels of `names`)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get("project_id") == str(project_id) and all(
        labels.get(key) == value for key, value in APP_LABELS.items()
    )


def _refuse_foreign(obj: Object, project_id: uuid.UUID) -> None:
    if not _ours(obj, project_id):
        kind, name = obj.get("kind", "object"), (obj.get("metadata") or {}).get("name")
        raise KubernetesError(
            409, f"{kind} {name} exists but is not the hub's for this project: left alone"
        )


def _owner_uid(obj: Object) -> str | None:
    owners = obj.get("metadata", {}).get("ownerReferences") or [{}]
    uid = owners[0].get("uid")
    return uid if isinstance(uid, str) else None


def _token(secret: Object) -> str | None:
    data = (secret.get("data") or {}).get("token")
    return base64.b64decode(data).decode() if data else None
