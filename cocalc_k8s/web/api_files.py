"""A project's files over HTTP: listing, download (Range, ETag), atomic upload, delete,
move/copy/mkdir, a folder as a zip. Served from the hub's storage, so they work while the
project is stopped. File actions go to the project log (services.file_events).

Downloads never run as pages, scripts or stylesheets of the hub's origin: every response
carries `Content-Security-Policy: sandbox` and `nosniff`, its type is never one a browser
runs or applies (`download_types`: `.js` is `text/plain`, `.wasm` a byte stream), and
active documents (HTML, SVG, XML) are sent as attachments.
"""

from __future__ import annotations

import asyncio
import os
from email.utils import formatdate

from aiohttp import web

from cocalc_k8s.core.errors import PayloadTooLarge
from cocalc_k8s.keys import ACTIVITY, DISK_QUOTA, ENGINE, FILES, HISTORY, PROJECTS
from cocalc_k8s.services.zip_stream import zip_filename
from cocalc_k8s.web import api_uploads
from cocalc_k8s.web.access import ProjectAccess, project_access
from cocalc_k8s.web.download_types import attachment, download_type
from cocalc_k8s.web.file_response import send_file, send_zip
from cocalc_k8s.web.jsonio import json_response, read_json

CHUNK = 256 * 1024


async def listing(request: web.Request) -> web.Response:
    access = await project_access(request)
    entries = await request.app[FILES].listing(access.project_id, request.query.get("path", ""))
    return json_response({"entries": entries})


async def download(request: web.Request) -> web.StreamResponse:
    access = await project_access(request)
    path = request.match_info["path"]
    handle, st = await request.app[FILES].open_read(access.project_id, path)
    try:
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(st.st_mtime, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",  # streamed: the headers middleware comes too late
            "Cache-Control": "private, no-cache",
        }
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        content_type, as_attachment = download_type(path)
        if content_type == "application/pdf" and request.query.get("view"):
            # The Files tab's PDF viewer frames this; still sandboxed, and only its own
            # origin may frame it.
            headers["Content-Security-Policy"] = "sandbox; frame-ancestors 'self'"
            headers["X-Frame-Options"] = "SAMEORIGIN"
        if as_attachment:
            headers["Content-Disposition"] = attachment(path.rsplit("/", 1)[-1])
        return await send_file(request, handle, st, headers=headers, content_type=content_type)
    finally:
        await asyncio.to_thread(handle.close)


async def upload(request: web.Request) -> web.Response:
    """The raw body replaces the file atomically; on any failure the old file stays."""
    access = await project_access(request)
    files, quota = request.app[FILES], request.app[DISK_QUOTA]
    size, path = request.content_length, request.match_info["path"]
    if size is not None and size > files.max_file_bytes:
        raise PayloadTooLarge(f"file larger than the limit of {files.max_file_bytes} bytes")
    replacing = await files.size(access.project_id, path)
    adding = None if size is None else max(0, size - replacing)
    room = await quota.room(access.project_id, adding=adding) + replacing
    writer = await files.begin_write(access.project_id, path, max_bytes=room)
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            await asyncio.to_thread(writer.write, chunk)
        await asyncio.to_thread(writer.commit)
    except PayloadTooLarge:
        if room >= files.max_file_bytes:
            raise
        raise PayloadTooLarge(
            f"not enough space in the project: only {room} bytes fit in its disk quota"
        ) from None
    finally:
        await asyncio.to_thread(writer.abort)
    quota.wrote(access.project_id, writer.size - replacing)
    request.app[ACTIVITY].touch(access.project_id)
    await request.app[HISTORY].record_quietly(
        access.project_id, path, account_id=access.principal.account_id, kind="api"
    )
    if writer.created:
        await _log(request, access, "file.created", path)
    else:
        await files.events.saved(
            request.app[ENGINE],
            account_id=access.principal.account_id,
            project_id=access.project_id,
            path=path,
        )
    return json_response({"size": writer.size}, status=201)


async def delete(request: web.Request) -> web.Response:
    access = await project_access(request)
    path = request.match_info["path"]
    await request.app[FILES].delete(access.project_id, path)
    await request.app[HISTORY].deleted(access.project_id, path)
    request.app[DISK_QUOTA].forget(access.project_id)
    request.app[ACTIVITY].touch(access.project_id)
    await _log(request, access, "file.deleted", path)
    return web.Response(status=204)


async def operate(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    quota = request.app[DISK_QUOTA]
    if body.get("op") == "copy" and isinstance(body.get("src"), str):
        await quota.room(
            access.project_id, adding=await request.app[FILES].size(access.project_id, body["src"])
        )
    done = await request.app[FILES].operate(access.project_id, body)
    if done.to is not None and done.kind == "file.moved":
        await request.app[HISTORY].renamed(access.project_id, done.path, done.to)
    elif done.to is not None:
        await request.app[HISTORY].record_quietly(
            access.project_id, done.to, account_id=access.principal.account_id, kind="api"
        )
    quota.forget(access.project_id)
    request.app[ACTIVITY].touch(access.project_id)
    await _log(request, access, done.kind, done.path, **({"to": done.to} if done.to else {}))
    return web.Response(status=204)


async def download_zip(request: web.Request) -> web.StreamResponse:
    """`?path=folder` as a streamed zip (symlinks left out, see services.zip_stream)."""
    access = await project_access(request)
    path = request.query.get("path", "")
    dir_fd = await request.app[FILES].open_dir(access.project_id, path)
    try:
        title = "" if path.strip("/") else await _title(request, access)
        name = zip_filename(path, title)
    except BaseException:
        await asyncio.to_thread(os.close, dir_fd)
        raise
    headers = {
        "Content-Disposition": attachment(name),
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, no-store",
    }
    response = await send_zip(request, dir_fd, headers=headers)
    request.app[ACTIVITY].touch(access.project_id)
    return response


async def _title(request: web.Request, access: ProjectAccess) -> str:
    project = await request.app[PROJECTS].get(access.principal, access.project_id)
    return str(project["title"])


async def _log(
    request: web.Request, access: ProjectAccess, kind: str, path: str, **data: str
) -> None:
    await request.app[FILES].events.record(
        request.app[ENGINE],
        kind,
        account_id=access.principal.account_id,
        project_id=access.project_id,
        path=path,
        **data,
    )


def routes() -> list[web.AbstractRouteDef]:
    base = "/api/v2/projects/{project_id}"
    return [
        web.get(base + "/listing", listing),
        web.get(base + "/files/{path:.+}", download),
        web.put(base + "/files/{path:.+}", upload),
        web.delete(base + "/files/{path:.+}", delete),
        web.post(base + "/files-ops", operate),
        web.get(base + "/zip", download_zip),
        *api_uploads.routes(base),
    ]
