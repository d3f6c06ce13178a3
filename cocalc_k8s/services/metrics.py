"""The hub's Prometheus metrics, in a registry of its own (one per hub application)."""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.services.connections import Connections

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PoolCollector(Collector):
    """Connections in the database pool, read at scrape time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self.engine.pool
        size = GaugeMetricFamily("cocalc_db_pool_size", "Pooled database connections")
        size.add_metric([], float(getattr(pool, "size", lambda: 0)()))
        yield size
        used = GaugeMetricFamily("cocalc_db_pool_checked_out", "Connections in use")
        used.add_metric([], float(getattr(pool, "checkedout", lambda: 0)()))
        yield used
        overflow = GaugeMetricFamily("cocalc_db_pool_overflow", "Connections beyond the pool")
        overflow.add_metric([], float(max(0, getattr(pool, "overflow", lambda: 0)())))
        yield overflow


class ConnectionsCollector(Collector):
    """Open long-lived connections (terminals, progress streams, proxied WebSockets) and
    the accounts holding them, read at scrape time."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def collect(self) -> Iterator[GaugeMetricFamily]:
        clients = GaugeMetricFamily(
            "cocalc_connected_clients", "Open long-lived connections, by kind", labels=["kind"]
        )
        by_kind = self.connections.by_kind()
        for kind in sorted({"terminal", "progress", "proxy", *by_kind}):
            clients.add_metric([kind], float(by_kind.get(kind, 0)))
        yield clients
        accounts = GaugeMetricFamily(
            "cocalc_connected_accounts", "Accounts with at least one open connection"
        )
        accounts.add_metric([], float(self.connections.accounts()))
        yield accounts


class GcCollector(Collector):
    """Objects the garbage collector leaves out: what the hub made while starting
    (`cli.freeze_what_startup_made`), read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        frozen = GaugeMetricFamily(
            "cocalc_gc_frozen_objects", "Objects left out of garbage collections (startup's)"
        )
        frozen.add_metric([], float(gc.get_freeze_count()))
        yield frozen


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cocalc_http_requests",
            "HTTP requests answered, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "cocalc_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "cocalc_event_loop_lag_seconds",
            "How late a periodic event-loop callback ran (time the loop was blocked)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.gc_pause = Histogram(
            "cocalc_gc_pause_seconds",
            "How long a garbage collection stopped the hub, by generation (2: a full one)",
            ["generation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(GcCollector())
        self._gc_children = {g: self.gc_pause.labels(str(g)) for g in range(3)}
        self._gc_pauses: deque[tuple[int, float]] = deque(maxlen=10_000)

    def gc_callback(self) -> Callable[[str, dict[str, Any]], None]:
        """For `gc.callbacks`: notes how long each collection took, for `observe_gc`.
        It takes no lock (a collection may start in any thread, inside any code, even
        a metric's own update): a bounded deque's append is atomic."""
        started = [0.0]
        pauses = self._gc_pauses

        def callback(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            elif started[0]:
                pauses.append((info["generation"], time.perf_counter() - started[0]))

        return callback

    def observe_gc(self) -> None:
        """Move the pauses noted since the last call into `gc_pause` (the lag probe's)."""
        children = self._gc_children
        while self._gc_pauses:
            generation, seconds = self._gc_pauses.popleft()
            children[generation].observe(seconds)

    def watch_pool(self, engine: AsyncEngine) -> None:
        self.registry.register(PoolCollector(engine))

    def watch_connections(self, connections: Connections) -> None:
        self.registry.register(ConnectionsCollector(connections))
