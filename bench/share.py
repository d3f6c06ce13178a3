"""The share server: a cached rendered page against a static file of the same size, and
the first render of a 5 MB notebook with images (time and peak memory).

Starts a real `cocalc-k8s serve`, publishes a folder (listed) holding a markdown page and
a notebook written straight into the project's home, then:

1. warms the page (one render, now cached) and loads it with wrk (or an aiohttp load
   generator), then loads a static file of the hub of the same size (written beside the
   hub's static files for the run, removed after): req/s of each and their ratio (the
   issue's goal is >= 0.7; a cached page still costs a database lookup of the item and
   of the reader's role);
2. times the first GET of the notebook's page (a render in a worker process) and samples
   the memory of the hub and of its render processes meanwhile (peak RSS).

Machines here are noisy: only ratios from the same run mean anything.

    python bench/share.py [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
from _hub import Hub, post_json, running_hub, sign_up
from account_rps import load

from cocalc_k8s.web.templating import STATIC_DIR


def markdown_page(paragraphs: int) -> str:
    words = [
        "the",
        "share",
        "server",
        "renders",
        "markdown",
        "with",
        "tables",
        "code",
        "and",
        "math",
    ]
    rng = random.Random(1)
    parts = ["# Benchmark page\n", "| a | b |\n|---|---|\n| 1 | $x_1$ |\n"]
    for n in range(paragraphs):
        parts.append(f"## Section {n}\n\n" + " ".join(rng.choice(words) for _ in range(80)))
        parts.append("```python\ndef f(x):\n    return x * 2\n```\n")
    return "\n\n".join(parts)


def notebook_with_images(total_bytes: int) -> str:
    rng = random.Random(2)
    cells = []
    image = base64.b64encode(rng.randbytes(200_000)).decode()  # ~270 KB of base64 each
    while sum(len(json.dumps(c)) for c in cells) < total_bytes:
        n = len(cells)
        cells.append({
            "cell_type": "code", "id": f"c{n}", "metadata": {}, "execution_count": n,
            "source": f"plot({n})",
            "outputs": [{"output_type": "display_data", "metadata": {},
                         "data": {"image/png": image, "text/plain": "<Figure>"}}],
        })  # fmt: skip
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})


def publish(hub: Hub) -> tuple[str, int]:
    account = sign_up(hub.base)
    headers = account.key_headers
    project, _ = post_json(f"{hub.base}/api/v2/projects", {"title": "Bench"}, headers)
    home = hub.data_dir / "projects" / project["project_id"]
    home.mkdir(parents=True, exist_ok=True)
    (home / "pub").mkdir()
    (home / "pub/page.md").write_text(markdown_page(60))
    notebook = notebook_with_images(5 * 1024 * 1024)
    (home / "pub/big.ipynb").write_text(notebook)
    item, _ = post_json(
        f"{hub.base}/api/v2/projects/{project['project_id']}/public-paths",
        {"path": "pub", "visibility": "listed"},
        headers,
    )
    return item["id"], len(notebook)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def peak_memory_during(hub: Hub, action: Callable[[], object]) -> tuple[float, int, int]:
    """(seconds, peak RSS of the hub, peak RSS of one render process) while `action` runs."""
    hub_process = psutil.Process(hub.process.pid)
    peaks = {"hub": 0, "render": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peaks["hub"] = max(peaks["hub"], hub_process.memory_info().rss)
                for child in hub_process.children(recursive=True):
                    peaks["render"] = max(peaks["render"], child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    try:
        action()
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    return elapsed, peaks["hub"], peaks["render"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with running_hub("--content-port", "0") as hub:
        share_id, notebook_size = publish(hub)
        page_url = f"{hub.base}/share/{share_id}/page.md"
        page = fetch(page_url)  # the one render; every later GET is served from the cache
        static = Path(STATIC_DIR) / f"bench-share-{os.getpid()}.html"
        static.write_bytes(page)
        try:
            static_rps = load(
                f"{hub.base}/static/{static.name}", {}, args.seconds, args.connections
            )
            page_rps = load(page_url, {}, args.seconds, args.connections)
        finally:
            static.unlink()
        print(f"page size {len(page) / 1024:.0f} KiB")
        print(f"static file of the same size  {static_rps:8.0f} req/s")
        print(f"cached rendered share page    {page_rps:8.0f} req/s")
        print(f"ratio                         {page_rps / static_rps:8.2f} (goal >= 0.7)")

        url = f"{hub.base}/share/{share_id}/big.ipynb"
        seconds, hub_peak, render_peak = peak_memory_during(hub, lambda: fetch(url))
        print(
            f"notebook {notebook_size / 1024**2:.1f} MB with images: first render {seconds:.2f} s"
        )
        hub_mib, render_mib = hub_peak / 1024**2, render_peak / 1024**2
        print(f"peak RSS: hub {hub_mib:.0f} MiB, render process {render_mib:.0f} MiB")
        start = time.perf_counter()
        fetch(url)
        print(f"the same page again (cached): {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
