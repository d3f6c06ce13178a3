"""File handlers: thin HTTP shells over `ProjectFS`, whose blocking calls run in threads."""

from __future__ import annotations

import asyncio
import html
import mimetypes
import os
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from aiohttp import web

from cocalc_k8s.agent.http import json_object
from cocalc_k8s.agent.keys import FS, SETTINGS
from cocalc_k8s.core.errors import BadRequest, DomainError, PayloadTooLarge
from cocalc_k8s.core.http_range import RangeNotSatisfiable, parse_range
from cocalc_k8s.core.projectfs import ProjectFS

READ_CHUNK = 256 << 10
UPLOAD_CHUNK = 1 << 20


async def listing(request: web.Request) -> web.Response:
    path = request.query.get("path", "")
    entries = await asyncio.to_thread(request.app[FS].listing, path)
    return web.json_response({"entries": entries})


async def read(request: web.Request) -> web.StreamResponse:
    path = request.match_info["path"]
    fs = request.app[FS]
    if request.query.get("index") == "1" and await asyncio.to_thread(_is_dir, fs, path):
        return await _index(fs, path)
    f = await asyncio.to_thread(fs.open_read, path)
    try:
        st = os.fstat(f.fileno())
        try:
            wanted = parse_range(request.headers.get("Range"), st.st_size)
        except RangeNotSatisfiable:
            raise web.HTTPRequestRangeNotSatisfiable(
                headers={"Content-Range": f"bytes */{st.st_size}"}
            ) from None
        start, end = (wanted[0], wanted[1] + 1) if wanted else (0, st.st_size)
        response = web.StreamResponse(status=206 if wanted else 200)
        response.content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        response.content_length = end - start
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Last-Modified"] = formatdate(st.st_mtime, usegmt=True)
        if wanted:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{st.st_size}"
        await response.prepare(request)
        await asyncio.to_thread(f.seek, start)
        remaining = end - start
        while remaining > 0:
            chunk = await asyncio.to_thread(f.read, min(READ_CHUNK, remaining))
            if not chunk:
                break  # truncated meanwhile: the client sees a short body
            remaining -= len(chunk)
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        f.close()


def _is_dir(fs: ProjectFS, path: str) -> bool:
    try:
        fs.listing(path)
    except DomainError:
        return False
    return True


async def _index(fs: ProjectFS, path: str) -> web.Response:
    """A directory as a plain HTML index (for raw views: `?index=1`)."""
    entries = await asyncio.to_thread(fs.listing, path)
    rows = "".join(
        f'<li><a href="{quote(e["name"])}{"/" if e["is_dir"] else ""}">'
        f"{html.escape(e['name'])}{'/' if e['is_dir'] else ''}</a></li>"
        for e in entries
    )
    title = html.escape("/" + path.strip("/"))
    body = (
        f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><ul>{rows}</ul>"
    )
    return web.Response(text=body, content_type="text/html")


async def write(request: web.Request) -> web.Response:
    """Stream the raw body into an atomic write (413 past ``--max-upload-bytes``)."""
    path = request.match_info["path"]
    limit = request.app[SETTINGS].max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"file is larger than the limit of {limit} bytes")
    writer = await asyncio.to_thread(request.app[FS].begin_write, path, max_bytes=limit)
    try:
        async for chunk in request.content.iter_chunked(UPLOAD_CHUNK):
            await asyncio.to_thread(writer.write, chunk)
        await asyncio.to_thread(writer.commit)
    finally:
        await asyncio.to_thread(writer.abort)
    return web.json_response({"size": writer.size})


async def delete(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[FS].delete, request.match_info["path"])
    return web.json_response({"ok": True})


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string")
    return value


async def operation(request: web.Request) -> web.Response:
    """``{"op": "move"|"copy", "src", "dst"}`` or ``{"op": "mkdir", "path"}``."""
    body = await json_object(request)
    fs = request.app[FS]
    op = body.get("op")
    if op == "move":
        await asyncio.to_thread(fs.move, _string(body, "src"), _string(body, "dst"))
    elif op == "copy":
        await asyncio.to_thread(fs.copy, _string(body, "src"), _string(body, "dst"))
    elif op == "mkdir":
        await asyncio.to_thread(fs.mkdir, _string(body, "path"))
    else:
        raise BadRequest("'op' must be one of move, copy, mkdir")
    return web.json_response({"ok": True})
