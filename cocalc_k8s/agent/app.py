"""`create_app(settings)`: the agent's one place that wires routes, middlewares and resources.

Routes (every one needs ``Authorization: Bearer <token>``; errors are ``{"error": msg}``):

    GET    /health                 {"status": "ok"}
    GET    /usage                  memory, CPU seconds, processes, disk of the home
    GET    /listing?path=DIR       {"entries": [{"name", "is_dir", "size", "mtime"}]}
    GET    /files/{path}           the bytes (streamed, one Range supported)
    PUT    /files/{path}           raw body written atomically, parents created
    DELETE /files/{path}           a file or a tree
    POST   /files-ops              {"op": "move"|"copy", "src", "dst"} | {"op": "mkdir", "path"}
    POST   /exec                   {"command", "timeout"?, "cwd"?}
    GET    /exec-stream            WebSocket: stdin, stdout, stderr, exit status (SSH sessions)
    GET    /terminals              {"terminals": [{"name", "pid", "clients", "created"}]}
    GET    /terminals/{name}       WebSocket (see `cocalc_k8s.agent.terminal_socket`)
    DELETE /terminals/{name}       kill it
    GET    /servers                {"servers": [{"name", "available", "reason"}]}
    POST   /servers/{name}         {"base_url", "identity_key"?, "project_id"?} → {"port",
                                   "host", "token"}: jupyter, jupyterlab, code
    GET    /watch?after=N&instance=I&timeout=S   changed text files (long poll; `watch`)
"""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.agent import (
    exec_api,
    exec_stream,
    files,
    servers,
    terminal_socket,
    usage,
    watch_api,
)
from cocalc_k8s.agent.execution import CommandRunner
from cocalc_k8s.agent.http import auth_middleware, errors
from cocalc_k8s.agent.keys import COMMANDS, FS, SETTINGS, TERMINALS, WATCHER
from cocalc_k8s.agent.settings import AgentSettings
from cocalc_k8s.agent.terminals import TerminalRegistry
from cocalc_k8s.agent.watch import HomeWatcher
from cocalc_k8s.core.projectfs import ProjectFS


async def _start_watching(app: web.Application) -> None:
    app[WATCHER].start()


async def _stop_children(app: web.Application) -> None:
    await app[WATCHER].close()
    await app[TERMINALS].close_all()
    await app[COMMANDS].stop_all()


def create_app(settings: AgentSettings) -> web.Application:
    app = web.Application(middlewares=[errors, auth_middleware(settings.token)])
    app[SETTINGS] = settings
    app[FS] = ProjectFS(settings.home)
    app[TERMINALS] = TerminalRegistry(settings.home, scrollback=settings.scrollback_bytes)
    app[COMMANDS] = CommandRunner(settings.home, output_bytes=settings.exec_output_bytes)
    app[WATCHER] = HomeWatcher(settings.home)
    app.on_startup.append(_start_watching)
    app.on_shutdown.append(_stop_children)
    app.router.add_get("/health", usage.health, allow_head=False)
    app.router.add_get("/usage", usage.usage, allow_head=False)
    app.router.add_get("/listing", files.listing, allow_head=False)
    app.router.add_get("/files/{path:.*}", files.read, allow_head=False)
    app.router.add_put("/files/{path:.*}", files.write)
    app.router.add_delete("/files/{path:.*}", files.delete)
    app.router.add_post("/files-ops", files.operation)
    app.router.add_post("/exec", exec_api.execute)
    app.router.add_get("/exec-stream", exec_stream.stream, allow_head=False)
    app.router.add_get("/terminals", terminal_socket.list_terminals, allow_head=False)
    app.router.add_get("/terminals/{name}", terminal_socket.join, allow_head=False)
    app.router.add_delete("/terminals/{name}", terminal_socket.kill)
    app.router.add_get("/watch", watch_api.watch, allow_head=False)
    servers.setup(app)
    return app
