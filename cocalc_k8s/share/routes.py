"""The share server's routes and resources, wired into the hub by `app.create_app`.

The vanity route `/{username}/{project}/{share}/…` is a catch-all of three segments, so
it is added after every other route; usernames can never be one of the hub's first
segments nor look like a project id (see core.url_names).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.core.url_names import RESERVED_USERNAMES
from cocalc_k8s.db.notify import PROJECT_ACCESS, Listener
from cocalc_k8s.keys import ENGINE, FILES, PROJECTS
from cocalc_k8s.services.sharing import SHARE_CHANNEL, SharingService, ViewCounter
from cocalc_k8s.services.url_names import UrlNames
from cocalc_k8s.share import api, folder_zip, manage, pages, raw, seo
from cocalc_k8s.share.cache import RenderCache
from cocalc_k8s.share.keys import (
    PUBLISHED,
    RENDER_CACHE,
    RENDER_POOL,
    SHARING,
    URL_NAMES,
    VIEWS,
)
from cocalc_k8s.share.published import PublishedFiles
from cocalc_k8s.share.worker import RenderPool

VIEW_FLUSH_SECONDS = 5.0
# Only what can be a username: the hub's own first segments (reserved) never reach the
# vanity handler, so e.g. an unknown POST /api/v2/x stays a 404, not a 405.
_RESERVED = "|".join(re.escape(name) for name in sorted(RESERVED_USERNAMES))
VANITY = (
    "/{username:(?!(?:" + _RESERVED + ")/)[a-z0-9][a-z0-9.-]*}"
    "/{project:[a-z0-9][a-z0-9.-]*}/{share:[a-z0-9][a-z0-9.-]*}"
)
log = logging.getLogger(__name__)


def share_context(database_url: str) -> Any:
    return functools.partial(_share_context, database_url=database_url)


async def _share_context(app: web.Application, database_url: str) -> AsyncIterator[None]:
    """After the hub's services (it needs the engine, projects and files). A listener of
    its own keeps the readers' cache of items true on every hub (services.sharing)."""
    sharing = app[SHARING] = SharingService(app[ENGINE], app[PROJECTS])
    listener = Listener(database_url)
    listener.subscribe(SHARE_CHANNEL, sharing.forget)
    listener.subscribe(PROJECT_ACCESS, sharing.forget_project)
    listener.on_reset(sharing.stop_caching)
    listener.on_connected(sharing.start_caching)
    await listener.start()
    app[URL_NAMES] = UrlNames(app[ENGINE], app[PROJECTS])
    app[PUBLISHED] = PublishedFiles(app[FILES])
    app[RENDER_POOL] = RenderPool()
    app[RENDER_CACHE] = RenderCache()
    app[VIEWS] = ViewCounter(app[ENGINE])
    loop = asyncio.get_running_loop()
    flusher = loop.create_task(_flush_views(app[VIEWS]))
    warming = loop.create_task(app[RENDER_POOL].warm_up())
    yield
    await listener.stop()
    await cancel(warming)
    await cancel(flusher)
    await app[VIEWS].flush()


async def _flush_views(views: ViewCounter) -> None:
    while True:
        await asyncio.sleep(VIEW_FLUSH_SECONDS)
        try:
            await views.flush()
        except Exception:  # the database is away: the counts wait for the next flush
            log.warning("share view counts not saved yet", exc_info=True)


def setup_share(app: web.Application, *, database_url: str) -> None:
    app.cleanup_ctx.append(share_context(database_url))
    app.router.add_routes(
        [
            *api.routes(),
            web.get("/robots.txt", seo.robots),
            web.get("/sitemap.xml", seo.sitemap),
            web.get("/share", pages.index),
            web.get("/share/", pages.index),
            web.get("/share/raw/{share_id}/{path:.*}", raw.raw),
            web.get("/share/zip/{share_id}", folder_zip.folder_zip),
            web.get("/share/zip/{share_id}/{path:.*}", folder_zip.folder_zip),
            web.get("/share/project/{project_id}", manage.project_shares),
            web.get("/share/{share_id}", pages.item_by_id),
            web.get("/share/{share_id}/{path:.*}", pages.item_by_id),
            web.get(VANITY, pages.item_by_names),
            web.get(VANITY + "{tail:/.*}", pages.item_by_names),
        ]
    )
