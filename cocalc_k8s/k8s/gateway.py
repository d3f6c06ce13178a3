"""The gateway to the Kubernetes API: every call the hub makes goes through here.

The official client is synchronous, so calls run in a small thread pool of their own (its
size bounds the hub's concurrency against the API server; the client has no rate limit).
Every call has a timeout; 5xx, 429 and connection errors are retried with exponential
backoff; answers are parsed from JSON by us (`_preload_content=False`): the client's model
objects cost ~15x as much. Objects go in and come out as plain dicts.

Idempotence: `create` answers 409 Conflict by adopting the existing object, or by
replacing it when `replace_if(existing)` says so; `delete` treats 404 as done.
Watches are in `cocalc_k8s.k8s.stream`.

Namespaces: calls go to the gateway's `namespace` (the projects') unless one is named
(the hub's own, for its NFS Service); kinds in CLUSTER_KINDS have no namespace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

log = logging.getLogger(__name__)

KINDS = ("pod", "secret", "event", "service", "persistent_volume", "node")
CLUSTER_KINDS = frozenset({"persistent_volume", "node"})
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0


class KubernetesError(Exception):
    """An API call failed for good; `status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API: {message} ({status or 'no answer'})")
        self.status = status


def api_client(api_url: str | None = None, *, pool_size: int = 10) -> client.ApiClient:
    """A client for `api_url`, else the in-cluster service account, else ~/.kube/config."""
    configuration = client.Configuration()
    if api_url:
        configuration.host = api_url.rstrip("/")
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException:
            config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.retries = False  # we retry, with backoff, above urllib3
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def _error(exc: Exception) -> KubernetesError:
    if isinstance(exc, ApiException):
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except ValueError:
            message = exc.reason
        return KubernetesError(int(exc.status or 0), str(message))
    return KubernetesError(0, f"{type(exc).__name__}: {exc}")


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, ApiException):
        return int(exc.status or 0) >= 500 or exc.status == 429
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


class KubernetesGateway:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        concurrency: int = 8,
        attempts: int = 6,
        backoff: float = 0.1,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.attempts = attempts
        self.backoff = backoff
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="k8s-api")

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.api.close)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`CoreV1Api.<method>(*args, **kwargs)` off the loop, retried; the parsed JSON."""
        data = await self._run(method, args, kwargs, read=True)
        return json.loads(data or b"null")

    async def call_raw(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The same, answering the unread urllib3 response (for watch streams)."""
        return await self._run(method, args, kwargs, read=False)

    async def _run(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, read: bool
    ) -> Any:
        function = getattr(self.core, method)
        kwargs.setdefault("_request_timeout", (CONNECT_TIMEOUT, READ_TIMEOUT))
        kwargs["_preload_content"] = False

        def request() -> Any:  # in a pool thread: the request and reading the body
            response = function(*args, **kwargs)
            return response.data if read else response

        loop = asyncio.get_running_loop()
        for attempt in range(self.attempts):
            try:
                return await loop.run_in_executor(self._pool, request)
            except Exception as exc:
                if not _retryable(exc) or attempt == self.attempts - 1:
                    raise _error(exc) from None
                delay = self.backoff * 2**attempt * (1 + random.random() / 2)  # noqa: S311
                log.info("Kubernetes API %s failed (%s); retry in %.2f s", method, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _target(
        self, verb: str, kind: str, name: str | None, namespace: str | None
    ) -> tuple[Any, ...]:
        """The client method and its leading arguments for `verb` on `kind`."""
        args = [name] if name is not None else []
        if kind in CLUSTER_KINDS:
            return (f"{verb}_{kind}", *args)
        return (f"{verb}_namespaced_{kind}", *args, namespace or self.namespace)

    async def create(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        replace_if: Callable[[Any], bool] | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Create; on 409 adopt the existing object, or delete and create again when
        `replace_if(existing)` (waiting while the old one is still terminating)."""
        name = body["metadata"]["name"]
        for attempt in range(self.attempts * 4):
            try:
                created: dict[str, Any] = await self.call(
                    *self._target("create", kind, None, namespace), body
                )
                return created
            except KubernetesError as exc:
                if exc.status != 409:
                    raise
            existing = await self.get(kind, name, namespace=namespace)
            if existing is None:
                continue  # deleted in between: create again
            if replace_if is None or not replace_if(existing):
                return existing
            if not existing["metadata"].get("deletionTimestamp"):
                await self.delete(kind, name, namespace=namespace)
            await asyncio.sleep(min(self.backoff * 2**attempt, 1.0))
        raise KubernetesError(409, f"{kind} {name} still exists")

    async def get(
        self, kind: str, name: str, *, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.call(*self._target("read", kind, name, namespace))
            return found
        except KubernetesError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete(self, kind: str, name: str, *, namespace: str | None = None) -> None:
        """Delete (with the object's own grace period); 404 means already done."""
        try:
            await self.call(*self._target("delete", kind, name, namespace))
        except KubernetesError as exc:
            if exc.status != 404:
                raise

    async def list(
        self, kind: str, *, label_selector: str = "", field_selector: str = ""
    ) -> dict[str, Any]:
        """The whole list (`items`, `metadata.resourceVersion`) as JSON dicts."""
        found: dict[str, Any] = await self.call(
            f"list_namespaced_{kind}",
            self.namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT * 3),
        )
        return found
