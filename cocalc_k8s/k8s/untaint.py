"""`python -m cocalc_k8s.k8s.untaint`: the taint scheme of prepull-untaint.yaml (off by
default; docs/kubernetes.md, "Prepull").

New project nodes join tainted `cocalc-projects=init:NoSchedule`, so no project pod lands
on a node before the project image is there. The DaemonSet's pod tolerates the taint; its
init container pulls the image (it runs `true` in it), then this container removes the
taint from its own node (NODE_NAME, from the downward API) and waits to be stopped: a node
that restarts keeps its image and has no taint to remove.

The patch is a JSON patch that first tests the node's taints are still the ones read, so a
taint added or removed by someone else in between is never lost (the patch fails and is
retried from a fresh read). Only our taint goes; every other taint stays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from cocalc_k8s.k8s.gateway import KubernetesError, KubernetesGateway, api_client

log = logging.getLogger(__name__)

INIT_TAINT = {"key": "cocalc-projects", "value": "init", "effect": "NoSchedule"}
JSON_PATCH = "application/json-patch+json"


def is_init_taint(taint: dict[str, Any]) -> bool:
    return taint.get("key") == INIT_TAINT["key"] and taint.get("effect") == INIT_TAINT["effect"]


def untaint_patch(taints: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The JSON patch that removes our taint from `taints` (as read), or None when it is not
    there."""
    kept = [taint for taint in taints if not is_init_taint(taint)]
    if len(kept) == len(taints):
        return None
    test = {"op": "test", "path": "/spec/taints", "value": taints}
    if not kept:
        return [test, {"op": "remove", "path": "/spec/taints"}]
    return [test, {"op": "replace", "path": "/spec/taints", "value": kept}]


async def untaint(gateway: KubernetesGateway, node: str) -> bool:
    """Remove our taint from `node`; False when it had none. Raises KubernetesError (409 or
    422 when the taints changed since they were read: call again)."""
    found = await gateway.get("node", node)
    if found is None:
        raise KubernetesError(404, f"no node {node}")
    patch = untaint_patch(list((found.get("spec") or {}).get("taints") or []))
    if patch is None:
        return False
    await gateway.call("patch_node", node, patch, _content_type=JSON_PATCH)
    log.info("removed the taint %s:%s from node %s", INIT_TAINT["key"], "NoSchedule", node)
    return True


async def untaint_until_done(
    gateway: KubernetesGateway, node: str, *, backoff: float = 1.0
) -> None:
    """`untaint`, retried (the API server may be busy, the taints may change meanwhile)."""
    delay = backoff
    while True:
        try:
            await untaint(gateway, node)
            return
        except KubernetesError as exc:
            log.warning("could not untaint node %s (%s); again in %.0f s", node, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 60.0)


async def _main(node: str, api_url: str | None, *, once: bool) -> None:
    gateway = KubernetesGateway(api_client(api_url), namespace="", concurrency=1)
    try:
        await untaint_until_done(gateway, node)
    finally:
        await gateway.close()
    if once:
        return
    stopped = asyncio.Event()  # keep the pod (and the image) until the DaemonSet stops it
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cocalc_k8s.k8s.untaint", description=__doc__)
    parser.add_argument("--node", default=os.environ.get("NODE_NAME"), help="default: $NODE_NAME")
    parser.add_argument("--api-url", help="the API server (default: in-cluster, then kubeconfig)")
    parser.add_argument("--once", action="store_true", help="exit once the taint is gone")
    args = parser.parse_args(argv)
    if not args.node:
        parser.error("no node: set NODE_NAME (the downward API's spec.nodeName) or --node")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_main(args.node, args.api_url, once=args.once))


if __name__ == "__main__":
    main()
