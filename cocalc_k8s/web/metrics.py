"""Request metrics, the event-loop lag probe and the two ways to read /metrics:
admins on the hub's port, anyone who reaches the optional separate metrics port."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cocalc_k8s.core.errors import DomainError
from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.keys import METRICS
from cocalc_k8s.services.metrics import HubMetrics
from cocalc_k8s.web.auth import Handler, require_admin

LAG_INTERVAL = 0.5


def route_name(request: web.Request) -> str:
    """The route's pattern, never the raw path: ids in paths must not explode the labels."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except (web.HTTPException, DomainError) as exc:
        status = exc.status
        raise
    finally:
        route = route_name(request)
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.request_seconds.labels(request.method, route).observe(time.perf_counter() - start)


def metrics_response(metrics: HubMetrics) -> web.Response:
    response = web.Response(body=generate_latest(metrics.registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def admin_metrics(request: web.Request) -> web.Response:
    require_admin(request)
    return metrics_response(request.app[METRICS])


async def _probe_loop_lag(metrics: HubMetrics) -> None:
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + LAG_INTERVAL
        await asyncio.sleep(LAG_INTERVAL)
        metrics.loop_lag.observe(max(0.0, loop.time() - expected))
        metrics.observe_gc()


async def loop_lag_probe(app: web.Application) -> AsyncIterator[None]:
    """The event loop's lag, and the garbage collector's pauses (one cause of it)."""
    task = asyncio.create_task(_probe_loop_lag(app[METRICS]))
    callback = app[METRICS].gc_callback()
    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)
        await cancel(task)


async def start_metrics_site(metrics: HubMetrics, host: str, port: int) -> web.AppRunner:
    """A listener of its own for Prometheus: /metrics only, no authentication."""

    async def scrape(request: web.Request) -> web.Response:
        return metrics_response(metrics)

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
