"""JupyterLab on a stopped project: from opening its link to a usable launcher, in Chromium.

Starts a real `cocalc-k8s serve` on 127.0.0.1 (fresh data directory; the project
environment of project-env/ must be installed where it runs), signs up, and N times
(default 5): creates a project (stopped), opens
`/{project_id}/port/jupyterlab/lab` on its content origin in a fresh browser context,
and times until a launcher card is visible (the hub's sign-in redirects, the project's
start, Jupyter's start with real-time collaboration, the page's load). It also prints
the memory (RSS) of each idle JupyterLab server.

The baseline is JupyterHub's published figure for a local spawn to a usable server,
4.3 s (the issue's compass): the ratio is ours over it.

    python bench/jupyter_start.py [--count 5]
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

import psutil
from _hub import free_port, median, running_hub, sign_up
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
JUPYTERHUB_LOCAL_SPAWN_S = 4.3


def api(url: str, method: str, headers: dict[str, str], body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **headers}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
        return json.loads(text) if text else {}


def server_rss(project_id: str) -> int | None:
    """RSS in bytes of the project's JupyterLab server process (not its kernels)."""
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if f"--ServerApp.base_url=/{project_id}/" in cmdline:
            return int(process.info["memory_info"].rss)
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    content_port = free_port()
    with running_hub("--content-port", str(content_port)) as hub:
        account = sign_up(hub.base)
        name, value = account.cookie.split("=", 1)
        seconds: list[float] = []
        memory: list[int] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for run in range(args.count):
                project = api(
                    f"{hub.base}/api/v2/projects",
                    "POST",
                    account.cookie_headers,
                    {"title": f"lab {run}"},
                )
                project_id = project["project_id"]
                url = f"http://{project_id}.localhost:{content_port}/{project_id}"
                context = browser.new_context()
                context.add_cookies([{"name": name, "value": value, "url": hub.base}])
                page = context.new_page()
                began = time.perf_counter()
                page.goto(f"{url}/port/jupyterlab/lab", timeout=120_000)
                page.locator(".jp-LauncherCard").first.wait_for(timeout=120_000)
                seconds.append(time.perf_counter() - began)
                time.sleep(2)  # idle: the first requests of the page are over
                rss = server_rss(project_id)
                if rss is not None:
                    memory.append(rss)
                print(
                    f"run {run + 1}: launcher after {seconds[-1]:.2f} s"
                    + (f", server RSS {rss / 2**20:.0f} MiB" if rss else "")
                )
                context.close()
                api(f"{hub.base}/api/v2/projects/{project_id}/stop", "POST", account.cookie_headers)
            browser.close()
    p50 = median(seconds)
    print(f"stopped project -> JupyterLab launcher: p50 {p50:.2f} s of {len(seconds)}")
    print(
        f"JupyterHub local spawn (published): {JUPYTERHUB_LOCAL_SPAWN_S:.1f} s; "
        f"ratio ours/theirs {p50 / JUPYTERHUB_LOCAL_SPAWN_S:.2f}x"
    )
    if memory:
        mib = median(memory) / 2**20
        print(f"idle JupyterLab with collaboration: server RSS median {mib:.0f} MiB")


if __name__ == "__main__":
    main()
