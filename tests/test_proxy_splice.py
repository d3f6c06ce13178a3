"""Large bodies moved in the kernel (cocalc_k8s/proxy/splice.py): what happens when a side
misbehaves or leaves halfway, and that the connection goes on after a spliced body.

Raw HTTP/1.1 over asyncio streams, so that each test controls exactly what is sent when.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.localhost import loopback
from tests.test_proxy import setup  # noqa: F401 (the fixture)
from tests.test_proxy_large import BLOCK, block, large_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.timeout(120)
DEADLINE = 10.0


class Connection:
    """One keep-alive connection to the content origin, speaking HTTP/1.1 by hand."""

    def __init__(self, base: str, key: str) -> None:
        parts = urlsplit(base)
        self.host, self.port, self.prefix = parts.hostname or "", parts.port, parts.path
        self.key = key
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> Connection:
        # A project's host under localhost: the address is given (see tests/localhost.py).
        self.reader, self.writer = await asyncio.open_connection(loopback(self.host), self.port)
        return self

    def send_head(self, method: str, path: str, length: int | None = None) -> None:
        lines = [
            f"{method} {self.prefix}{path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Authorization: Bearer {self.key}",
        ]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response, whole (the tests only read small ones whole)."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.writer.close()


def open_sockets() -> int:
    """Sockets this process holds open (the hub runs in it)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


async def wait_for(condition: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def counted_get(base: str, key: str, path: str) -> tuple[int, Connection]:
    """The sockets open before (after one request has warmed everything up), and a new
    connection that has sent `GET path`."""
    await warm(base, key)
    before = open_sockets()
    conn = await Connection(base, key).open()
    conn.send_head("GET", path)
    return before, conn


async def warm(base: str, key: str) -> None:
    """One request first: the database connections and caches it opens stay open."""
    conn = await Connection(base, key).open()
    conn.send_head("PUT", "/upload", 0)
    status, _, _ = await conn.response()
    assert status == 200
    conn.close()


async def test_uploads_and_downloads_go_on_on_one_connection(
    setup: dict[str, Any],  # noqa: F811
    large_server: str,  # noqa: F811
) -> None:
    conn = await Connection(large_server, setup["key"]).open()
    for size in (4 * BLOCK, 2 * BLOCK):
        conn.send_head("PUT", "/upload", size)
        for i in range(size // BLOCK):
            conn.writer.write(block(i))
        status, _, body = await conn.response()
        assert status == 200 and json.loads(body)["length"] == size
        conn.send_head("GET", f"/download?size={size}")
        status, _, body = await conn.response()
        assert status == 200 and body == b"".join(block(i) for i in range(size // BLOCK))
    conn.close()


async def test_a_body_cut_short_by_the_server_closes_the_client(
    setup: dict[str, Any],  # noqa: F811
    large_server: str,  # noqa: F811
) -> None:
    before, conn = await counted_get(large_server, setup["key"], "/truncated")
    head = await conn.reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n", 1)[0]
    async with asyncio.timeout(DEADLINE):
        rest = await conn.reader.read()  # up to the end: the proxy hangs up too
    assert len(rest) == BLOCK
    conn.close()
    await wait_for(lambda: open_sockets() <= before, "sockets left open after a cut body")


async def test_a_client_leaving_mid_download_frees_both_connections(
    setup: dict[str, Any],  # noqa: F811
    large_server: str,  # noqa: F811
) -> None:
    before, conn = await counted_get(large_server, setup["key"], f"/download?size={256 * BLOCK}")
    await conn.reader.readexactly(BLOCK)  # well into the body, then gone
    conn.writer.transport.abort()
    await wait_for(lambda: open_sockets() <= before, "sockets left open after the client left")
    await warm(large_server, setup["key"])  # and the proxy goes on


async def test_an_answer_before_the_upload_is_read_reaches_the_client(
    setup: dict[str, Any],  # noqa: F811
    large_server: str,  # noqa: F811
) -> None:
    conn = await Connection(large_server, setup["key"]).open()
    size = 256 * BLOCK
    conn.send_head("PUT", "/early", size)

    async def upload() -> None:
        for i in range(size // BLOCK):
            conn.writer.write(block(i))
            await conn.writer.drain()

    sending = asyncio.ensure_future(upload())
    async with asyncio.timeout(DEADLINE):
        status, _, body = await conn.response()
    assert status == 413 and json.loads(body) == {"error": "too large"}
    async with asyncio.timeout(DEADLINE):  # the rest of the upload is refused, not hung
        with pytest.raises(ConnectionError):
            await sending
    conn.close()
    await warm(large_server, setup["key"])
