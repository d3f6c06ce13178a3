"""The one route table of the hub."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.web import (
    api_account,
    api_admin,
    api_auth,
    api_copies,
    api_exec,
    api_files,
    api_history,
    api_lifecycle,
    api_project_log,
    api_projects,
    api_servers,
    api_ssh_keys,
    api_status,
    content_auth,
    health,
    metrics,
    pages,
    terminals,
)


def setup_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.get("/healthz", health.healthz),
            web.get("/readyz", health.readyz),
            web.get("/metrics", metrics.admin_metrics),
            web.post("/api/v2/auth/sign-up", api_auth.sign_up),
            web.post("/api/v2/auth/sign-in", api_auth.sign_in),
            web.post("/api/v2/auth/sign-out", api_auth.sign_out),
            web.get("/api/v2/account", api_account.get_account),
            web.patch("/api/v2/account", api_account.patch_account),
            web.post("/api/v2/api-keys", api_account.create_api_key),
            web.get("/api/v2/api-keys", api_account.list_api_keys),
            web.delete("/api/v2/api-keys/{key_id}", api_account.delete_api_key),
            *api_admin.routes(),
            *api_projects.routes(),
            *api_lifecycle.routes(),
            *api_project_log.routes(),
            *api_files.routes(),
            *api_history.routes(),
            *api_copies.routes(),
            *api_ssh_keys.routes(),
            web.post("/api/v2/projects/{project_id}/exec", api_exec.execute),
            web.get("/api/v2/projects/{project_id}/usage", api_status.usage),
            web.get("/api/v2/projects/{project_id}/servers", api_servers.servers),
            web.get("/api/v2/projects/{project_id}/log", api_status.log),
            web.get("/api/v2/projects/{project_id}/terminals", terminals.list_terminals),
            web.get("/api/v2/projects/{project_id}/terminals/{name}", terminals.open_terminal),
            *pages.routes(),
            *content_auth.routes(),
        ]
    )
