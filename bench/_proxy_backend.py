"""The small, fast backend that bench/proxy.py puts behind the proxies (its own process).

    python bench/_proxy_backend.py PORT [--uvloop]

GET …/small  a short text
GET …/1m     1 MiB (with Content-Length)
GET …/ws     WebSocket echo (text and binary)

Any prefix is accepted (`/{project_id}/port/{port}/small` is what the hub's proxy forwards
for a `/port/` URL: the path is kept whole).
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import WSMsgType, web

SMALL = b"hello from the backend\n"
ONE_MIB = b"x" * (1 << 20)


async def small(request: web.Request) -> web.Response:
    return web.Response(body=SMALL, content_type="text/plain")


async def one_mib(request: web.Request) -> web.Response:
    return web.Response(body=ONE_MIB, content_type="application/octet-stream")


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


def app() -> web.Application:
    application = web.Application()
    for name, handler in (("small", small), ("1m", one_mib), ("ws", echo)):
        application.router.add_get("/" + name, handler)
        application.router.add_get("/{prefix:.+}/" + name, handler)
    return application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
    web.run_app(
        app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        handle_signals=True,
        loop=loop,
    )


if __name__ == "__main__":
    main()
