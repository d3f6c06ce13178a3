"""The pod reflector at scale: initial sync of N project pods (default 10,000) from the
emulated API server, the memory the cache holds, the latency from a pod's change in the
API to the backend's callback (p50/p99), and the hub's CPU while nothing changes.

The emulator runs in a child process (so its JSON encoding is not counted against the
hub). Usage: python bench/k8s_watch.py [--pods 10000] [--changes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import ClientSession, web

from cocalc_k8s.core.quotas import Quota
from cocalc_k8s.k8s.cluster import ProjectCluster
from cocalc_k8s.k8s.config import KubernetesConfig
from cocalc_k8s.k8s.gateway import KubernetesGateway, api_client
from cocalc_k8s.k8s.manifests import project_pod
from cocalc_k8s.k8s.names import resolved_names
from tests.k8s_emulator import KubernetesEmulator

NS = "cocalc-projects"
CONFIG = KubernetesConfig(namespace=NS, nfs_server="10.0.0.2")


def running_pod(project_id: uuid.UUID) -> dict[str, Any]:
    pod = project_pod(project_id, Quota(), CONFIG, names=resolved_names(project_id),
                      cpu_oc=10, mem_oc=5)  # fmt: skip
    pod["metadata"].update(uid=str(uuid.uuid4()), namespace=NS)
    pod["spec"]["nodeName"] = "node-1"
    pod["status"] = {
        "phase": "Running",
        "podIP": "10.1.2.3",
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    return pod


def serve(count: int, ready: Any) -> None:
    async def main() -> None:
        emulator = KubernetesEmulator()
        names = []
        for _ in range(count):
            pod = running_pod(uuid.uuid4())
            names.append(pod["metadata"]["name"])
            emulator.store.put("pods", pod, added=True)

        async def flip(request: web.Request) -> web.Response:
            pod = emulator.store.get("pods", NS, names[int(request.match_info["i"])])
            assert pod is not None
            ready = pod["status"]["conditions"][0]
            ready["status"] = "False" if ready["status"] == "True" else "True"
            changed = time.time()
            emulator.store.put("pods", pod)
            return web.json_response({"time": changed})

        emulator.app.router.add_post("/bench/flip/{i}", flip)
        ready.send(await emulator.start())
        await asyncio.Event().wait()

    asyncio.run(main())


async def measure(url: str, pods: int, changes: int) -> None:
    process = psutil.Process()
    gateway = KubernetesGateway(api_client(url), namespace=NS)
    cluster = ProjectCluster(gateway, CONFIG)
    seen: dict[uuid.UUID, float] = {}
    arrived = asyncio.Event()

    def on_pod(project_id: uuid.UUID, status: Any) -> None:
        seen[project_id] = time.time()
        arrived.set()

    cluster.on_pod(on_pod)
    rss = process.memory_info().rss
    start = time.perf_counter()
    await cluster.open()
    await cluster.loaded()
    sync = time.perf_counter() - start
    grown = (process.memory_info().rss - rss) / 2**20
    assert len(cluster.project_ids()) == pods
    print(f"initial sync of {pods} pods: {sync * 1000:.0f} ms; RSS +{grown:.0f} MiB "
          f"({grown * 2**20 / pods / 1024:.1f} KiB per pod, list parse included)")  # fmt: skip

    cpu = process.cpu_times()
    await asyncio.sleep(2)
    idle = process.cpu_times()
    busy = (idle.user + idle.system) - (cpu.user + cpu.system)
    print(f"hub CPU while {pods} pods do nothing: {busy / 2 * 100:.1f}% of a core")

    latencies = []
    async with ClientSession() as http:
        for i in range(changes):
            seen.clear()
            arrived.clear()
            async with http.post(f"{url}/bench/flip/{i % pods}") as resp:
                changed = (await resp.json())["time"]
            await asyncio.wait_for(arrived.wait(), 10)
            latencies.append((next(iter(seen.values())) - changed) * 1000)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"API change -> backend callback over {changes} changes: "
          f"p50 {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms")  # fmt: skip
    await cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=300)
    args = parser.parse_args()
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.Process(target=serve, args=(args.pods, send), daemon=True)
    child.start()
    try:
        url = receive.recv()
        asyncio.run(measure(url, args.pods, args.changes))
    finally:
        child.terminate()


if __name__ == "__main__":
    main()
