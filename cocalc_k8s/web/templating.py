"""Jinja2 templates for the hub's pages (autoescaped), rendered with the request context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from cocalc_k8s import __version__
from cocalc_k8s.keys import SITE_SETTINGS, TEMPLATES
from cocalc_k8s.services.site_settings import DEFAULT_SITE_NAME
from cocalc_k8s.web.auth import principal_of
from cocalc_k8s.web.csrf import token_for
from cocalc_k8s.web.module_graph import module_closure

PACKAGE_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"


def create_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Globals, so that pages rendered outside `render` (the error page) have them too.
    env.globals["version"] = __version__
    env.globals["site_name"] = DEFAULT_SITE_NAME
    return env


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    context.setdefault("static_url", lambda name: static_url(request.app, name))
    context.setdefault("module_preloads", lambda *entries: module_closure(STATIC_DIR, entries))
    context.setdefault("principal", principal_of(request))
    context.setdefault("csrf_token", token_for(request))
    site = request.app.get(SITE_SETTINGS)
    if site is not None:  # the in-memory copy: no database query per page
        context.setdefault("site_name", site.current.site_name)
    html = request.app[TEMPLATES].get_template(template).render(**context)
    response = web.Response(status=status, text=html, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


_STATIC_URLS: dict[str, str] = {}


def static_url(app: web.Application, name: str) -> str:
    """A URL with the file's content hash (`?v=`), so browsers may cache it for good.
    aiohttp reads and hashes the file at every call; the files do not change while the
    hub runs, so each is hashed once (not on the event loop at every page rendered)."""
    url = _STATIC_URLS.get(name)
    if url is None:
        url = _STATIC_URLS[name] = str(app.router["static"].url_for(filename=name))
    return url


def see_other(location: str) -> web.Response:
    """A 303 redirect as a plain response, so it can carry cookies (aiohttp deprecates
    returning an HTTPException)."""
    return web.Response(status=303, headers={"Location": location})
