"""The plain-HTTP listener of a TLS hub: every request is sent to the HTTPS URL."""

from __future__ import annotations

from aiohttp import web


async def start_redirect_site(public_url: str, host: str, port: int) -> web.AppRunner:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(public_url + request.rel_url.raw_path_qs)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
