"""/share/zip/{id}/{path}: a published folder (or a folder inside one) as a zip.

Same access rule as the pages and the same confinement as every other share URL: the
folder is opened from the item's root (`PublishedFiles.open_folder`), symlinks are left
out wherever they point, and so are names starting with a dot, as in the listings.
"""

from __future__ import annotations

import asyncio
import os
import posixpath

from aiohttp import web

from cocalc_k8s.services.zip_stream import zip_filename
from cocalc_k8s.share.headers import RAW_CSP
from cocalc_k8s.share.keys import PUBLISHED, SHARING
from cocalc_k8s.share.pages import readable_item
from cocalc_k8s.share.published import clean_inner
from cocalc_k8s.web.download_types import attachment
from cocalc_k8s.web.file_response import send_zip


async def folder_zip(request: web.Request) -> web.StreamResponse:
    item = await request.app[SHARING].item(request.match_info["share_id"])
    await readable_item(request, item)
    inner = clean_inner(request.match_info.get("path", "").rstrip("/"))
    dir_fd = await request.app[PUBLISHED].open_folder(item.project_id, item.path, inner)
    try:
        # The item's own name for its root (what the reader saw), else the folder's.
        title = item.name or posixpath.basename(item.path) or item.project_title
        headers = {
            "Content-Disposition": attachment(zip_filename(inner, title)),
            "Content-Security-Policy": RAW_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Referrer-Policy": "no-referrer",
        }
        if item.visibility != "listed":
            headers["X-Robots-Tag"] = "noindex, nofollow"
    except BaseException:
        await asyncio.to_thread(os.close, dir_fd)
        raise
    return await send_zip(request, dir_fd, headers=headers, skip_hidden=True)
