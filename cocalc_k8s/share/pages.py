"""The share pages: the index of listed items, an item (a file rendered, or a folder
listed with its README below), and the vanity URLs that lead to the same.

Access, in `readable_item`: collaborators (and admins) read every item of their project;
anyone reads listed and unlisted items by id; signed-in-only items send anonymous
readers to sign in; disabled items and wrong ids are 404 (never 403: an unlisted id is a
secret, and a wrong one must look like no item at all).

A rendered file is cached by (item, path, size, mtime, renderer version) and its page has
an ETag from the same plus what else the page shows (the item's details, the reader), so
a reader's second visit is a 304 with no file read and no render.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from aiohttp import web

from cocalc_k8s.core.errors import NotFound
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.keys import PROJECTS
from cocalc_k8s.services.sharing import NO_SUCH_ITEM, SharedItem, may_read
from cocalc_k8s.share.cache import CacheKey
from cocalc_k8s.share.keys import PUBLISHED, RENDER_CACHE, RENDER_POOL, SHARING, URL_NAMES, VIEWS
from cocalc_k8s.share.kinds import LIMITS, README_NAMES, Kind, kind_of, rendered
from cocalc_k8s.share.links import Links
from cocalc_k8s.share.published import Opened, clean_inner
from cocalc_k8s.share.render import RENDERER_VERSION
from cocalc_k8s.share.trusted import trusted
from cocalc_k8s.share.worker import RenderFailed
from cocalc_k8s.web.auth import principal_of
from cocalc_k8s.web.templating import render

PAGE_SIZE = 200  # entries of a folder per page
MAX_ENTRIES = 3000  # entries of a folder shown at all
INDEX_PAGE = 30
LICENSE_NAMES = {
    "none": "no license given",
    "MIT": "MIT",
    "Apache-2.0": "Apache 2.0",
    "GPL-3.0": "GPL 3.0",
    "AGPL-3.0": "AGPL 3.0",
    "CC-BY-4.0": "CC BY 4.0",
    "other": "other (see the item)",
}


async def readable_item(
    request: web.Request, item: SharedItem
) -> tuple[Principal | None, str | None]:
    """(reader, their role in the item's project); raises NotFound or sends to sign in."""
    principal = principal_of(request)
    role = None
    if principal is not None:
        role = await request.app[PROJECTS].role_of(principal.account_id, item.project_id)
    verdict = may_read(item, principal, role)
    if verdict == "not-found":
        raise NotFound(NO_SUCH_ITEM)
    if verdict == "sign-in":
        raise web.HTTPSeeOther("/sign-in?next=" + quote(request.path_qs, safe=""))
    return principal, role


def _page_number(request: web.Request) -> int:
    try:
        return max(1, min(10_000, int(request.query.get("page", "1"))))
    except ValueError:
        return 1


async def index(request: web.Request) -> web.Response:
    search = request.query.get("q", "")[:200]
    page = _page_number(request)
    items, more = await request.app[SHARING].listed(
        search=search, offset=(page - 1) * INDEX_PAGE, limit=INDEX_PAGE
    )
    response = render(
        request,
        "share_index.html",
        page="share",
        items=items,
        search=search,
        number=page,
        more=more,
        licenses=LICENSE_NAMES,
        enabled=await request.app[SHARING].enabled(),
    )
    response.headers.update(_headers(noindex=bool(search)))
    return response


async def item_by_id(request: web.Request) -> web.StreamResponse:
    item = await request.app[SHARING].item(request.match_info["share_id"])
    return await show(request, item, request.match_info.get("path", ""))


async def item_by_names(request: web.Request) -> web.StreamResponse:
    """/{username}/{project}/{share}/{path}: old names redirect to the current ones."""
    username = request.match_info["username"]
    project = request.match_info["project"]
    resolved = await request.app[URL_NAMES].resolve(username, project)
    if resolved is None:
        raise NotFound(NO_SUCH_ITEM)
    share_name = request.match_info["share"]
    item = await request.app[SHARING].by_name(resolved.project_id, share_name)
    if (resolved.username, resolved.project_name) != (username, project):
        tail = request.match_info.get("tail", "")
        target = f"/{resolved.username}/{resolved.project_name}/{share_name}{quote(tail)}"
        raise web.HTTPMovedPermanently(target)
    return await show(request, item, request.match_info.get("tail", "").lstrip("/"))


async def show(request: web.Request, item: SharedItem, raw_inner: str) -> web.StreamResponse:
    principal, role = await readable_item(request, item)
    inner = clean_inner(raw_inner)
    opened = await request.app[PUBLISHED].open(item.project_id, item.path, inner)
    try:
        if opened.entries is not None:
            return await _folder(request, item, opened, principal, role)
        return await _file(request, item, opened, principal, role)
    finally:
        if opened.handle is not None:
            await asyncio.to_thread(opened.handle.close)


def _headers(*, noindex: bool) -> dict[str, str]:
    from cocalc_k8s.share.headers import page_headers

    headers = page_headers(noindex=noindex)
    headers["Cache-Control"] = "private, no-cache"
    return headers


def _context(
    item: SharedItem, inner: str, role: str | None, *, project_path: str, is_file: bool
) -> dict[str, Any]:
    crumbs = []
    parts = [p for p in inner.split("/") if p]
    for n, part in enumerate(parts):
        crumbs.append((part, "/".join(parts[: n + 1])))
    return {
        "item": item,
        "inner": inner,
        "crumbs": crumbs,
        "license_name": LICENSE_NAMES.get(item.license, item.license),
        "edit_url": _edit_url(item, project_path, is_file) if role is not None else None,
        "is_file": is_file,
        "noindex": item.visibility != "listed",
    }


async def _description_html(request: web.Request, item: SharedItem) -> str:
    """The item's description (markdown, at most 10,000 characters) rendered like a
    file: in a worker, cached until the item is edited."""
    if not item.description:
        return ""
    stamp = int(item.last_edited.timestamp() * 1_000_000)
    key: CacheKey = (item.id, "\x00description", len(item.description), stamp, RENDERER_VERSION)
    cache = request.app[RENDER_CACHE]
    html = cache.get(key)
    if html is None:
        try:
            html = await request.app[RENDER_POOL].render(
                "markdown", item.description.encode(), "", Links(item.id, ""), LIMITS["markdown"]
            )
        except RenderFailed:
            html = ""
        cache.put(key, html)
    return html


def _edit_url(item: SharedItem, project_path: str, is_file: bool) -> str:
    """Where a collaborator edits this: the editor for a file, the file manager else."""
    return f"/projects/{item.project_id}/{'edit' if is_file else 'files'}/{quote(project_path)}"


async def _folder(
    request: web.Request,
    item: SharedItem,
    opened: Opened,
    principal: Principal | None,
    role: str | None,
) -> web.Response:
    entries = opened.entries or []
    shown = entries[:MAX_ENTRIES]
    page = _page_number(request)
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    page = min(page, pages)
    readme_html = ""
    for entry in entries:
        if not entry["is_dir"] and entry["name"].lower() in README_NAMES:
            readme_html = await _readme(request, item, opened.inner, entry["name"])
            break
    request.app[VIEWS].count(item.id)
    context = _context(item, opened.inner, role, project_path=opened.project_path, is_file=False)
    context["description_html"] = trusted(await _description_html(request, item))
    response = render(
        request,
        "share_item.html",
        page="share",
        view="folder",
        entries=shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        total=len(entries),
        number=page,
        pages=pages,
        readme_html=trusted(readme_html),
        body_html="",
        kind="folder",
        raw_url=None,
        note=None,
        modified=None,
        **context,
    )
    response.headers.update(_headers(noindex=context["noindex"]))
    return response


async def _readme(request: web.Request, item: SharedItem, folder: str, name: str) -> str:
    inner = f"{folder}/{name}" if folder else name
    try:
        opened = await request.app[PUBLISHED].open(item.project_id, item.path, inner)
    except NotFound:
        return ""
    try:
        kind: Kind = "markdown" if name.lower().endswith((".md", ".markdown")) else "text"
        html, _note = await _rendered(request, item, opened, kind)
        return html
    finally:
        if opened.handle is not None:
            await asyncio.to_thread(opened.handle.close)


async def _rendered(
    request: web.Request, item: SharedItem, opened: Opened, kind: Kind
) -> tuple[str, str | None]:
    """(HTML, None) or ("", why it is not rendered)."""
    assert opened.st is not None and opened.handle is not None
    limits = LIMITS[kind]
    if opened.st.st_size > limits.max_bytes:
        mb = limits.max_bytes // (1024 * 1024)
        return "", f"This file is larger than {mb} MB, too large to show here."
    key: CacheKey = (
        item.id,
        opened.inner,
        opened.st.st_size,
        opened.st.st_mtime_ns,
        RENDERER_VERSION + kind,
    )
    cache = request.app[RENDER_CACHE]
    html = cache.get(key)
    if html is not None:
        return html, None
    data = await asyncio.to_thread(opened.handle.read, limits.max_bytes + 1)
    links = Links(item.id, posixpath.dirname(opened.inner))
    name = posixpath.basename(opened.inner) or posixpath.basename(item.path)
    try:
        html = await request.app[RENDER_POOL].render(kind, data, name, links, limits)
    except RenderFailed as exc:
        return "", f"This file could not be shown: {exc}."
    cache.put(key, html)
    return html, None


def _etag(item: SharedItem, opened: Opened, principal: Principal | None, role: str | None) -> str:
    assert opened.st is not None
    parts = [
        item.id,
        opened.inner,
        str(opened.st.st_size),
        str(opened.st.st_mtime_ns),
        RENDERER_VERSION,
        item.last_edited.isoformat(),
        str(principal.account_id) if principal else "-",
        principal.name if principal else "-",
        role or "-",
        item.project_title,
        item.author or "-",
    ]
    return '"' + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32] + '"'


async def _file(
    request: web.Request,
    item: SharedItem,
    opened: Opened,
    principal: Principal | None,
    role: str | None,
) -> web.StreamResponse:
    assert opened.st is not None
    etag = _etag(item, opened, principal, role)
    headers = _headers(noindex=item.visibility != "listed")
    headers["ETag"] = etag
    headers["Last-Modified"] = formatdate(opened.st.st_mtime, usegmt=True)
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    name = posixpath.basename(opened.inner) or posixpath.basename(item.path)
    kind = kind_of(name, opened.head)
    body_html, note = ("", None)
    if rendered(kind):
        body_html, note = await _rendered(request, item, opened, kind)
    request.app[VIEWS].count(item.id)
    raw = f"/share/raw/{item.id}/{quote(opened.inner)}"
    response = render(
        request,
        "share_item.html",
        page="share",
        view="file",
        kind=kind,
        body_html=trusted(body_html),
        note=note,
        raw_url=raw,
        name=name,
        size=opened.st.st_size,
        modified=datetime.fromtimestamp(opened.st.st_mtime, UTC),
        entries=[],
        readme_html="",
        description_html=trusted(await _description_html(request, item)),
        **_context(item, opened.inner, role, project_path=opened.project_path, is_file=True),
    )
    response.headers.update(headers)
    return response
