"""/robots.txt and /sitemap.xml: crawlers may read the share index and listed items,
nothing else; the sitemap names listed items only."""

from __future__ import annotations

from xml.sax.saxutils import escape

from aiohttp import web

from cocalc_k8s.keys import SETTINGS
from cocalc_k8s.share.keys import SHARING

SITEMAP_MAX = 50_000  # the sitemap protocol's limit per file


async def robots(request: web.Request) -> web.Response:
    base = request.app[SETTINGS].public_url.rstrip("/")
    text = (
        "User-agent: *\n"
        "Allow: /share\n"
        "Disallow: /share/raw/\n"
        "Disallow: /api/\n"
        "Disallow: /projects\n"
        f"Sitemap: {base}/sitemap.xml\n"
    )
    return web.Response(text=text, content_type="text/plain")


async def sitemap(request: web.Request) -> web.Response:
    base = request.app[SETTINGS].public_url.rstrip("/")
    items, _ = await request.app[SHARING].listed(limit=SITEMAP_MAX)
    urls = "".join(
        f"<url><loc>{escape(base + (item.vanity_url or f'/share/{item.id}'))}</loc>"
        f"<lastmod>{item.last_edited.date().isoformat()}</lastmod></url>"
        for item in items
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>\n'
    )
    return web.Response(text=body, content_type="application/xml")
