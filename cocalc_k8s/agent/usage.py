"""``GET /health`` and ``GET /usage``: the agent's process tree and its home's disk use.

Processes that left the tree (re-parented to init by double forking) are not counted; in
Kubernetes the pod's cgroup limits them all the same.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import psutil
from aiohttp import web

from cocalc_k8s.agent.keys import FS, TERMINALS


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def process_tree_usage() -> dict[str, Any]:
    """RSS of the agent and all its descendants, their CPU seconds (including reaped
    children's), and how many there are."""
    me = psutil.Process(os.getpid())
    rss = 0
    cpu = 0.0
    count = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                times = proc.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile
        cpu += times.user + times.system
        count += 1
    mine = me.cpu_times()
    cpu += mine.children_user + mine.children_system
    return {"memory_rss_bytes": rss, "cpu_seconds": round(cpu, 3), "processes": count}


async def usage(request: web.Request) -> web.Response:
    tree = await asyncio.to_thread(process_tree_usage)
    disk = await asyncio.to_thread(request.app[FS].disk_usage)
    terminals = len(request.app[TERMINALS].describe())
    return web.json_response({**tree, "disk_bytes": disk, "terminals": terminals})
