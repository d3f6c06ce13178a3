"""Which project, port and path a content-origin URL names (pure).

/{project_id}/port/{N|name}/rest     → port N, path kept whole (the app knows its base)
/{project_id}/server/{N|name}/rest   → port N, path with the prefix stripped
/{project_id}/raw/{path}             → the file at path (through the project's agent)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from cocalc_k8s.core.errors import BadRequest, NotFound

NAMED_SERVERS = frozenset({"jupyter", "jupyterlab", "code"})
Kind = Literal["port", "server", "raw"]


@dataclass(frozen=True, slots=True)
class Route:
    project_id: uuid.UUID
    kind: Kind
    port: int | None  # None: a named server, or raw
    name: str | None  # a named server ("jupyter"), or None
    prefix: str  # "/{project_id}/server/8888" (stripped), or "" when the path is kept
    upstream_path: str  # what the project's server is asked for (with the query)


def parse_route(target: str) -> Route:
    """`target` is the request target as sent ("/id/port/8888/api?x=1")."""
    path, sep, query = target.partition("?")
    parts = path.split("/", 4)  # "", id, kind, port, rest
    if len(parts) < 3 or parts[0] != "":
        raise NotFound("not a project URL")
    try:
        project_id = uuid.UUID(parts[1])
    except ValueError:
        raise NotFound("not a project URL") from None
    kind = parts[2]
    if kind == "raw":
        rest = path.split("/", 3)[3] if len(parts) > 3 else ""
        # A directory is shown as an index; the agent ignores `index` for files.
        return Route(project_id, "raw", None, None, "", "/files/" + rest + "?index=1")
    if kind not in ("port", "server"):
        raise NotFound("not a project URL")
    if len(parts) < 4 or not parts[3]:
        raise BadRequest("the URL must name a port: /{project_id}/" + kind + "/{port}/")
    port, name = _port(parts[3])
    rest = "/" + parts[4] if len(parts) > 4 else "/"
    if kind == "port":
        return Route(project_id, "port", port, name, "", path + sep + query)
    prefix = f"/{parts[1]}/server/{parts[3]}"
    return Route(project_id, "server", port, name, prefix, rest + sep + query)


def _port(text: str) -> tuple[int | None, str | None]:
    if text in NAMED_SERVERS:
        return None, text
    if not text.isdigit() or len(text) > 5:
        raise BadRequest(f"port must be a number from 1 to 65535 or one of {sorted(NAMED_SERVERS)}")
    port = int(text)
    if not 0 < port < 65536:
        raise BadRequest("port must be a number from 1 to 65535")
    return port, None


def canonical_target(route: Route, target: str) -> str | None:
    """Where a request for the "jupyter" named server goes instead (None: nowhere else).
    The Notebook 7 interface is served by the project's JupyterLab server, so that both
    share kernels and collaborative documents: /port/jupyter/ is its /tree page and
    /port/jupyter/X is /port/jupyterlab/X."""
    if route.name != "jupyter":
        return None
    path, sep, query = target.partition("?")
    parts = path.split("/", 4)  # "", id, kind, "jupyter", rest
    rest = parts[4] if len(parts) > 4 else ""
    return f"/{route.project_id}/{route.kind}/jupyterlab/{rest or 'tree'}{sep}{query}"


def rewrite_location(location: str, route: Route, upstream: str) -> str:
    """A redirect from a /server/ app points into its prefix; absolute URLs to the upstream
    itself become paths on the content origin."""
    if upstream and location.startswith(upstream):
        location = location[len(upstream) :] or "/"
        if route.kind == "port":
            return location
    if route.prefix and location.startswith("/") and not location.startswith("//"):
        return route.prefix + location
    return location
