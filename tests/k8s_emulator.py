"""An emulated Kubernetes API server (core/v1, one namespace or many) over real HTTP.

Just what the hub's gateway uses: pods, secrets, events and services (create, get, list,
watch, delete), with what kmock's emulator lacks: resourceVersion and uid on every object,
label and field selectors, watch streams that replay from a resourceVersion, 410 Gone for
a compacted one, graceful pod deletion (deletionTimestamp, then removal by the kubelet)
and garbage collection of objects owned by a deleted pod. Every object created is
validated against the real OpenAPI schemas with `kubernetes-validate`; an invalid one is
answered 422 and recorded in `invalid`, so a test fails just as a real server would refuse.

With `manifests` (the documents of deployment.yaml) it also enforces what a real API server
would on them: the RBAC rules bound to the hub's service account (a request outside them
is 403 with the real message; a request with `Authorization: Bearer cluster-admin` is the
admin's and passes) and the Pod Security level of each Namespace's `enforce` label (a pod
that violates it is 403 with the admission's reasons). Refusals are recorded in `refused`.

Faults for tests: `fail_next(n, status)` answers the next n requests with an error,
`drop_watches()` cuts every open watch mid-stream, `compact()` forgets the history.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
from aiohttp import web

from tests.k8s_pod_security import ENFORCE_LABEL, admission_error
from tests.k8s_rbac import Rbac, Request

K8S_VERSION = "1.37.0"
PLURALS = {"pods": "Pod", "secrets": "Secret", "events": "Event", "services": "Service",
           "persistentvolumeclaims": "PersistentVolumeClaim",
           "persistentvolumes": "PersistentVolume", "nodes": "Node"}  # fmt: skip
CLUSTER_SCOPED = frozenset({"persistentvolumes", "nodes"})
ADMIN = "Bearer cluster-admin"
"""The Authorization of a request made as the cluster's admin (kubectl), not the hub."""
VERBS = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}
Obj = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def label_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_matches(selector: str, obj: Obj) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        path, value = term.split("=", 1)
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if str(node) != value:
            return False
    return True


@dataclass
class Watcher:
    plural: str
    namespace: str
    labels: str
    fields: str
    queue: asyncio.Queue[Obj | None] = field(default_factory=asyncio.Queue)

    def wants(self, plural: str, obj: Obj) -> bool:
        meta = obj["metadata"]
        return (
            plural == self.plural
            and meta.get("namespace", "") == self.namespace
            and label_matches(self.labels, meta.get("labels") or {})
            and field_matches(self.fields, obj)
        )


@dataclass
class Store:
    """The objects, their change history and the open watches (also used in-process by
    the test kubelet)."""

    version: int = 0
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    history: list[tuple[int, str, str, Obj]] = field(default_factory=list)
    compacted: int = 0
    watchers: list[Watcher] = field(default_factory=list)

    def _record(self, plural: str, kind: str, obj: Obj) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        snapshot = json.loads(json.dumps(obj))
        self.history.append((self.version, plural, kind, snapshot))
        for watcher in self.watchers:
            if watcher.wants(plural, snapshot):
                watcher.queue.put_nowait({"type": kind, "object": snapshot})

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((plural, namespace, name))

    def put(self, plural: str, obj: Obj, *, added: bool = False) -> Obj:
        meta = obj["metadata"]
        self.objects[(plural, meta.get("namespace", ""), meta["name"])] = obj
        self._record(plural, "ADDED" if added else "MODIFIED", obj)
        return obj

    def remove(self, plural: str, namespace: str, name: str) -> None:
        obj = self.objects.pop((plural, namespace, name), None)
        if obj is None:
            return
        self._record(plural, "DELETED", obj)
        uid = obj["metadata"]["uid"]
        for key, other in list(self.objects.items()):
            owners = other["metadata"].get("ownerReferences") or []
            if any(owner.get("uid") == uid for owner in owners):
                self.remove(*key)

    def listed(self, plural: str, namespace: str, labels: str, fields: str) -> list[Obj]:
        probe = Watcher(plural, namespace, labels, fields)
        return [o for (p, _, _), o in self.objects.items() if probe.wants(p, o)]


class KubernetesEmulator:
    def __init__(
        self,
        manifests: list[Obj] | None = None,
        *,
        hub_namespace: str = "cocalc",
        service_account: str = "cocalc-hub",
    ) -> None:
        self.store = Store()
        self.invalid: list[str] = []
        self.refused: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._failures: list[int] = []
        self._streams: set[web.StreamResponse] = set()
        docs = [d for d in manifests or [] if d]
        self.rbac = (
            Rbac.from_manifests(docs, namespace=hub_namespace, service_account=service_account)
            if docs else None
        )  # fmt: skip
        self.namespace_labels: dict[str, dict[str, str]] = {
            d["metadata"]["name"]: d["metadata"].get("labels") or {}
            for d in docs if d["kind"] == "Namespace"
        }  # fmt: skip
        self.app = web.Application(middlewares=[self._faults, self._authorize])
        for base in ("/api/v1/namespaces/{ns}/{plural}", "/api/v1/{plural}"):
            self.app.router.add_get(base, self.list_or_watch)
            self.app.router.add_post(base, self.create)
            self.app.router.add_get(base + "/{name}", self.read)
            self.app.router.add_delete(base + "/{name}", self.delete)
            self.app.router.add_patch(base + "/{name}", self.patch)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        self.drop_watches()
        if self.runner is not None:
            await self.runner.cleanup()

    # -- faults -----------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500) -> None:
        self._failures.extend([status] * count)

    def drop_watches(self) -> None:
        for stream in list(self._streams):
            if stream.task is not None:  # the handler task: cut the connection mid-stream
                stream.task.cancel()

    def compact(self) -> None:
        self.store.compacted = self.store.version
        self.store.history.clear()

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self._failures:
            status = self._failures.pop(0)
            return status_response(status, "injected failure")
        return await handler(request)  # type: ignore[no-any-return]

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """RBAC: what the hub's service account may do, checked as the API server would."""
        info = request.match_info
        if self.rbac is None or request.headers.get("Authorization") == ADMIN or not info:
            return await handler(request)  # type: ignore[no-any-return]
        name = info.get("name")
        verb = VERBS.get(request.method, "get")
        if request.method == "GET" and name is None:
            verb = "watch" if request.query.get("watch", "").lower() in ("true", "1") else "list"
        asked = Request(verb, info.get("plural", ""), info.get("ns"), name)
        if not self.rbac.allows(asked):
            message = self.rbac.refusal(asked)
            self.refused.append(message)
            return status_response(403, message)
        return await handler(request)  # type: ignore[no-any-return]

    # -- handlers ---------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        ns, plural = request.match_info.get("ns", ""), request.match_info["plural"]
        if plural not in PLURALS or (plural in CLUSTER_SCOPED) != (not ns):
            return status_response(404, f"the server could not find the resource {plural}")
        obj: Obj = await request.json()
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", PLURALS[plural])
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except Exception as exc:
            self.invalid.append(f"{plural}: {exc}")
            return status_response(422, f"invalid {plural}: {exc}")
        meta = obj["metadata"]
        if plural == "pods":
            level = self.namespace_labels.get(ns, {}).get(ENFORCE_LABEL, "privileged")
            if (refusal := admission_error(obj, level)) is not None:
                self.refused.append(refusal)
                return status_response(403, refusal)
        if ns:
            meta["namespace"] = ns
        if "name" not in meta and "generateName" in meta:
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if self.store.get(plural, ns, meta["name"]) is not None:
            return status_response(409, f'{plural} "{meta["name"]}" already exists')
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if plural == "secrets" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(value.encode()).decode()
        if plural == "pods":
            obj["status"] = {"phase": "Pending"}
        return web.json_response(self.store.put(plural, obj, added=True), status=201)

    async def read(self, request: web.Request) -> web.Response:
        info = request.match_info
        obj = self.store.get(info["plural"], info.get("ns", ""), info["name"])
        if obj is None:
            return status_response(404, f'{info["plural"]} "{info["name"]}" not found')
        return web.json_response(obj)

    async def patch(self, request: web.Request) -> web.Response:
        """A JSON patch (RFC 6902: test, add, replace, remove), the result validated."""
        info = request.match_info
        plural, ns, name = info["plural"], info.get("ns", ""), info["name"]
        obj = self.store.get(plural, ns, name)
        if obj is None:
            return status_response(404, f'{plural} "{name}" not found')
        if request.content_type != "application/json-patch+json":
            return status_response(415, f"unsupported patch type {request.content_type}")
        patched = json.loads(json.dumps(obj))
        try:
            for op in await request.json():
                _apply(patched, op)
        except (KeyError, IndexError, ValueError) as exc:
            return status_response(422, f"the patch does not apply: {exc}")
        try:
            kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
        except Exception as exc:
            self.invalid.append(f"{plural}: {exc}")
            return status_response(422, f"invalid {plural}: {exc}")
        return web.json_response(self.store.put(plural, patched))

    async def delete(self, request: web.Request) -> web.Response:
        info = request.match_info
        plural, ns, name = info["plural"], info.get("ns", ""), info["name"]
        obj = self.store.get(plural, ns, name)
        if obj is None:
            return status_response(404, f'{plural} "{name}" not found')
        if plural == "pods" and obj["spec"].get("nodeName"):
            if not obj["metadata"].get("deletionTimestamp"):  # the kubelet finishes it
                obj["metadata"]["deletionTimestamp"] = now()
                self.store.put(plural, obj)
        else:
            self.store.remove(plural, ns, name)
        return web.json_response(obj)

    async def list_or_watch(self, request: web.Request) -> web.StreamResponse:
        ns, plural = request.match_info.get("ns", ""), request.match_info["plural"]
        query = request.query
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        if query.get("watch", "").lower() in ("true", "1"):
            watcher = Watcher(plural, ns, labels, fields)
            return await self._watch(request, watcher, query.get("resourceVersion", ""))
        items = self.store.listed(plural, ns, labels, fields)
        return web.json_response(
            {
                "apiVersion": "v1",
                "kind": PLURALS[plural] + "List",
                "metadata": {"resourceVersion": str(self.store.version)},
                "items": items,
            }
        )

    async def _watch(
        self, request: web.Request, watcher: Watcher, since: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self._streams.add(response)
        self.store.watchers.append(watcher)
        timeout = float(request.query.get("timeoutSeconds") or 300)
        try:
            for event in self._backlog(watcher, since):
                await response.write(json.dumps(event).encode() + b"\n")
                if event["type"] == "ERROR":
                    return response
            async with asyncio.timeout(timeout):
                async for event in _drain(watcher.queue):
                    await response.write(json.dumps(event).encode() + b"\n")
        except TimeoutError:
            pass
        finally:
            self.store.watchers.remove(watcher)
            self._streams.discard(response)
        return response

    def _backlog(self, watcher: Watcher, since: str) -> list[Obj]:
        if since in ("", "0"):
            return [{"type": "ADDED", "object": o} for o in
                    self.store.listed(watcher.plural, watcher.namespace, watcher.labels,
                                      watcher.fields)]  # fmt: skip
        if int(since) < self.store.compacted:
            gone = {"kind": "Status", "code": 410, "reason": "Expired",
                    "message": f"too old resource version: {since}"}  # fmt: skip
            return [{"type": "ERROR", "object": gone}]
        return [
            {"type": kind, "object": obj}
            for version, plural, kind, obj in self.store.history
            if version > int(since) and watcher.wants(plural, obj)
        ]


def _apply(obj: Obj, op: Obj) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) and last != "-" else last
    if op["op"] == "test":
        if node[key] != op["value"]:
            raise ValueError(f"test of {op['path']} failed")
    elif op["op"] == "remove":
        del node[key]
    elif op["op"] in ("add", "replace"):
        if op["op"] == "replace":
            node[key]  # replace needs an existing value: KeyError otherwise
        if isinstance(node, list) and op["op"] == "add":
            node.insert(len(node) if key == "-" else key, op["value"])
        else:
            node[key] = op["value"]
    else:
        raise ValueError(f"unsupported op {op['op']}")


async def _drain(queue: asyncio.Queue[Obj | None]) -> AsyncIterator[Obj]:
    while (item := await queue.get()) is not None:
        yield item


def status_response(code: int, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "code": code}  # fmt: skip
    return web.json_response(body, status=code)
