"""Watch streams: one Kubernetes watch request, its JSON lines read by a thread of its own
and handed to the event loop as parsed dicts.

A watch is long-lived, so it never takes a thread of the gateway's call pool. The read
timeout is the "quiet" limit: a stream that sends nothing for that long (no event, no
bookmark) raises `WatchEnded`, and the reflector starts a new one. Leaving the iterator
(break, cancel) shuts the connection down, which also ends the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from cocalc_k8s.k8s.gateway import CONNECT_TIMEOUT, KubernetesError, KubernetesGateway

_END = object()


class WatchEnded(Exception):
    """The stream ended: server timeout, dropped connection or a quiet spell."""


async def watch(
    gateway: KubernetesGateway,
    kind: str,
    *,
    resource_version: str,
    label_selector: str = "",
    field_selector: str = "",
    quiet: float = 60.0,
    server_timeout: int = 300,
) -> AsyncIterator[dict[str, Any]]:
    """Watch events ({"type", "object"}) after `resource_version`; ends with WatchEnded.
    An ERROR event (e.g. 410 Gone) is raised as KubernetesError."""
    response = await gateway.call_raw(
        f"list_namespaced_{kind}",
        gateway.namespace,
        watch=True,
        resource_version=resource_version,
        label_selector=label_selector,
        field_selector=field_selector,
        allow_watch_bookmarks=True,
        timeout_seconds=server_timeout,
        _request_timeout=(CONNECT_TIMEOUT, quiet),
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        pending = b""
        try:
            for chunk in response.stream(65536, decode_content=True):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line.strip():
                        put(line)
            put(_END)
        except Exception as exc:
            put(exc)

    threading.Thread(target=pump, name=f"k8s-watch-{kind}", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                raise WatchEnded("the server ended the watch")
            if isinstance(item, Exception):
                raise WatchEnded(f"{type(item).__name__}: {item}")
            event: dict[str, Any] = json.loads(item)
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                raise KubernetesError(int(status.get("code") or 0), str(status.get("message")))
            yield event
    finally:
        with contextlib.suppress(Exception):
            response.shutdown()
        with contextlib.suppress(Exception):
            response.release_conn()
