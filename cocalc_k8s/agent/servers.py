"""``POST /servers/{name}``: start a named server (see `named_servers`) and say its port
and the token it demands; ``GET /servers``: which of them this project can run."""

from __future__ import annotations

import asyncio

from aiohttp import web

from cocalc_k8s.agent.environment import child_environment
from cocalc_k8s.agent.http import json_object
from cocalc_k8s.agent.keys import SERVERS, SETTINGS
from cocalc_k8s.agent.named_servers import ServerRegistry, available
from cocalc_k8s.core.errors import BadRequest, Unavailable


async def start_server(request: web.Request) -> web.Response:
    body = await json_object(request)
    base_url = body.get("base_url", "/")
    if not isinstance(base_url, str) or not base_url.startswith("/") or "\n" in base_url:
        raise BadRequest("'base_url' must be a path")
    identity_key, project_id = body.get("identity_key"), body.get("project_id")
    for value in (identity_key, project_id):
        if value is not None and (not isinstance(value, str) or not value.isprintable()):
            raise BadRequest("'identity_key' and 'project_id' must be strings")
    registry = request.app[SERVERS]
    try:
        port, token = await registry.ensure(
            request.match_info["name"], base_url, identity_key=identity_key, project_id=project_id
        )
    except TimeoutError:
        raise Unavailable("the server did not start in time") from None
    return web.json_response({"port": port, "host": registry.host, "token": token})


async def list_servers(request: web.Request) -> web.Response:
    path = child_environment(request.app[SETTINGS].home, term="dumb").get("PATH")
    return web.json_response({"servers": await asyncio.to_thread(available, path)})


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[SERVERS] = ServerRegistry(settings.home, settings.host)
    app.router.add_get("/servers", list_servers, allow_head=False)
    app.router.add_post("/servers/{name}", start_server)

    async def stop(app: web.Application) -> None:
        await app[SERVERS].stop_all()

    app.on_shutdown.append(stop)
