"""One open file sent as an HTTP response: the whole file or the asked byte range (RFC 9110
Range, one range), streamed in chunks read off the event loop; or one open directory sent
as a streamed zip. Shared by the files API and the share site; each caller sets its own
headers (types, CSP, ETag, disposition) first."""

from __future__ import annotations

import asyncio
import os
from typing import BinaryIO

from aiohttp import web

from cocalc_k8s.core.http_range import RangeNotSatisfiable, parse_range
from cocalc_k8s.services.zip_stream import zip_pieces

CHUNK = 256 * 1024


async def send_file(
    request: web.Request,
    handle: BinaryIO,
    st: os.stat_result,
    *,
    headers: dict[str, str],
    content_type: str,
) -> web.StreamResponse:
    """Stream `handle` (its size from `st`), honouring `Range` (206, or 416 when no part of
    the file is asked); nothing but the head for HEAD. The caller closes `handle`."""
    try:
        byte_range = parse_range(request.headers.get("Range"), st.st_size)
    except RangeNotSatisfiable:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{st.st_size}"})
    start, end = byte_range or (0, st.st_size - 1)
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    response.content_type = content_type
    response.content_length = max(0, end - start + 1)
    if byte_range:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{st.st_size}"
    await response.prepare(request)
    if request.method != "HEAD":
        await asyncio.to_thread(handle.seek, start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            await response.write(chunk)
    await response.write_eof()
    return response


async def send_zip(
    request: web.Request, dir_fd: int, *, headers: dict[str, str], skip_hidden: bool = False
) -> web.StreamResponse:
    """Stream the zip of the tree under `dir_fd`, which this closes, whatever happens
    (see services.zip_stream for what is left out)."""
    response = web.StreamResponse(headers={"Content-Type": "application/zip", **headers})
    try:
        await response.prepare(request)
    except BaseException:
        await asyncio.to_thread(os.close, dir_fd)
        raise
    pieces = zip_pieces(dir_fd, skip_hidden=skip_hidden)  # owns dir_fd once iterated
    try:
        async for piece in pieces:
            await response.write(piece)
        await response.write_eof()
    finally:
        await pieces.aclose()
    return response
