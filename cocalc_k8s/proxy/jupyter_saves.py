"""Which file a request to a project's Jupyter server saves, so that TimeTravel's version
of it is by the collaborator who saved (`HistoryService.attribute`; pure).

A save through Jupyter's REST API is ``PUT {base_url}api/contents/{path}``. Notebooks
open in real-time collaboration are saved by the server itself (over the document's
WebSocket, or after a pause): those versions are recorded by the file watcher, as by
"disk".
"""

from __future__ import annotations

from urllib.parse import unquote

from cocalc_k8s.proxy.routing import Route

CONTENTS = "api/contents/"


def saved_path(method: bytes, route: Route) -> str | None:
    """The path (relative to the project's home) that this request saves, or None."""
    if method != b"PUT" or route.name not in ("jupyter", "jupyterlab"):
        return None
    base = f"/{route.project_id}/port/{route.name}/" if route.kind == "port" else "/"
    path = route.upstream_path.split("?", 1)[0]
    if not path.startswith(base + CONTENTS):
        return None
    saved = unquote(path[len(base + CONTENTS) :]).strip("/")
    return saved or None
