"""The small, fast backend that bench/proxy.py puts behind the proxies (its own process).

    python bench/_proxy_backend.py PORT [--uvloop]
    python bench/_proxy_backend.py PORT --relay-to BACKEND_PORT

GET …/small  a short text
GET …/1m     1 MiB (with Content-Length)
GET …/ws     WebSocket echo (text and binary)

Any prefix is accepted (`/{project_id}/port/{port}/small` is what the hub's proxy forwards
for a `/port/` URL: the path is kept whole).

With `--relay-to`, no backend but a reference point for proxies: a TCP relay to
127.0.0.1:BACKEND_PORT that moves bytes with splice(2) in the kernel (a pair of threads per
connection, blocking calls of up to 1 MiB, no HTTP parsing). Large bodies cannot cross any
proxy on this machine for less CPU, so its 1 MiB figure is the ceiling for a proxy that
shares the machine's cores with the client and the backend.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import socket
import threading

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


def _pump(source: socket.socket, sink: socket.socket) -> None:
    read, write = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 1 << 20)
    try:
        while n := os.splice(source.fileno(), write, 1 << 20):
            while n:
                n -= os.splice(read, sink.fileno(), n)
    except OSError:
        pass  # either side gone: the relay of this connection ends
    finally:
        os.close(read)
        os.close(write)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def relay(port: int, target: int) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--relay-to", type=int, help="be a splice relay to this port instead")
    args = parser.parse_args()
    if args.relay_to:
        relay(args.port, args.relay_to)
        return
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
