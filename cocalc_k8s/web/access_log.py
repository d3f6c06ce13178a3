"""One log line per request: method, path, status, duration, client, account."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from cocalc_k8s.web.auth import PRINCIPAL

log = logging.getLogger("cocalc_k8s.access")


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        principal = request.get(PRINCIPAL)
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            request.rel_url.path,
            response.status,
            time * 1000,
            extra={
                "method": request.method,
                "path": request.rel_url.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 2),
                "remote": request.remote,
                "account_id": str(principal.account_id) if principal else None,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
