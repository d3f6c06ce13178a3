"""/share/raw/{id}/{path}: a published file's bytes, streamed (Range, ETag, 304).

Same access rule as the pages. Every answer is `nosniff` with a sandbox CSP; HTML, SVG
and XML are attachments, except `?render=1` for HTML, which the item page frames in an
`<iframe sandbox>`: the document then has an opaque origin (no cookies, no hub API, no
script) whichever way it is opened. `?view=1` lets the page frame a PDF.
"""

from __future__ import annotations

import asyncio
import mimetypes
import posixpath
from email.utils import formatdate

from aiohttp import web

from cocalc_k8s.core.errors import NotFound
from cocalc_k8s.share.headers import ACTIVE_TYPES, FRAMED_CSP, RAW_CSP
from cocalc_k8s.share.keys import PUBLISHED, SHARING
from cocalc_k8s.share.pages import readable_item
from cocalc_k8s.share.published import NOT_FOUND, clean_inner
from cocalc_k8s.web.download_types import attachment
from cocalc_k8s.web.file_response import send_file


async def raw(request: web.Request) -> web.StreamResponse:
    item = await request.app[SHARING].item(request.match_info["share_id"])
    await readable_item(request, item)
    opened = await request.app[PUBLISHED].open(
        item.project_id, item.path, clean_inner(request.match_info.get("path", ""))
    )
    if opened.handle is None or opened.st is None:
        raise NotFound(NOT_FOUND)  # a folder has no bytes
    handle, st = opened.handle, opened.st
    try:
        name = posixpath.basename(opened.project_path)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(st.st_mtime, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Security-Policy": RAW_CSP,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Cache-Control": "private, no-cache",
            "Referrer-Policy": "no-referrer",
        }
        framed = (content_type == "text/html" and request.query.get("render") == "1") or (
            content_type == "application/pdf" and request.query.get("view") == "1"
        )
        if framed:
            headers["Content-Security-Policy"] = FRAMED_CSP
            headers["X-Frame-Options"] = "SAMEORIGIN"
        elif content_type in ACTIVE_TYPES:
            headers["Content-Disposition"] = attachment(name)
        if item.visibility != "listed":
            headers["X-Robots-Tag"] = "noindex, nofollow"
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return await send_file(request, handle, st, headers=headers, content_type=content_type)
    finally:
        await asyncio.to_thread(handle.close)
