"""Pod spec construction: `project_pod` per pod for 10,000 projects, against `json.dumps` of
the same result (the least the gateway does with a spec before sending it).

    python bench/pod_spec.py [--pods 10000]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from cocalc_k8s.core.quotas import DefaultQuotas, Quota
from cocalc_k8s.k8s.config import KubernetesConfig, parse_node_selector, parse_tolerations
from cocalc_k8s.k8s.manifests import project_pod
from cocalc_k8s.k8s.names import resolved_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10_000)
    args = parser.parse_args()
    config = KubernetesConfig(
        node_selector=parse_node_selector("cocalc-role=projects"),
        tolerations=parse_tolerations("cocalc-role=projects:NoSchedule"),
    )
    oc = DefaultQuotas()
    quotas = [Quota(), Quota(memory_mb=8000, cpu=4, network=False, ext_rw=True)]
    ids = [uuid.uuid4() for _ in range(args.pods)]
    names = [resolved_names(pid) for pid in ids]

    start = time.perf_counter()
    pods = [
        project_pod(pid, quotas[i % 2], config, names=n, cpu_oc=oc.cpu_oc, mem_oc=oc.mem_oc)
        for i, (pid, n) in enumerate(zip(ids, names, strict=True))
    ]
    build = time.perf_counter() - start

    start = time.perf_counter()
    size = sum(len(json.dumps(pod)) for pod in pods)
    dumps = time.perf_counter() - start

    per_pod = build / args.pods * 1e6
    print(f"pods                      {args.pods}")
    print(f"project_pod               {per_pod:8.1f} us/pod  ({build * 1000:.0f} ms in all)")
    print(
        f"json.dumps (baseline)     {dumps / args.pods * 1e6:8.1f} us/pod  ({size // args.pods} B)"
    )
    print(f"ratio build / dumps       {build / dumps:8.2f}x")


if __name__ == "__main__":
    main()
