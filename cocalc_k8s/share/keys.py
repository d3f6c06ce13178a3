"""The share server's shared resources, as typed AppKeys (declarations only)."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.services.sharing import SharingService, ViewCounter
from cocalc_k8s.services.url_names import UrlNames
from cocalc_k8s.share.cache import RenderCache
from cocalc_k8s.share.published import PublishedFiles
from cocalc_k8s.share.worker import RenderPool

SHARING = web.AppKey("sharing", SharingService)
URL_NAMES = web.AppKey("url_names", UrlNames)
PUBLISHED = web.AppKey("published_files", PublishedFiles)
RENDER_POOL = web.AppKey("render_pool", RenderPool)
RENDER_CACHE = web.AppKey("render_cache", RenderCache)
VIEWS = web.AppKey("share_views", ViewCounter)
