"""A gibibyte each way through the hub's proxy, in constant memory.

A client in its own process uploads 1 GiB to a project's server and downloads 1 GiB from
it, through the content origin, with a Content-Length and with chunked encoding; both
ends compare SHA-256 digests. The hub runs in this process, so this process's resident
memory, sampled while the bytes flow, is the hub's: it must stay within a bound far below
the size of the transfer (nothing is buffered whole; a fast sender is paused while the
other side is slow).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.localhost import loopback
from tests.project_servers import REPO, served_in
from tests.test_proxy import api, setup  # noqa: F401 (the fixture)

pytestmark = pytest.mark.timeout(240)

SIZE = 1 << 30
BLOCK = 1 << 20
RSS_BOUND = 64 << 20  # growth of the hub's resident memory allowed during a transfer
TRANSFER_SECONDS = 120.0
_BASE = random.Random(4).randbytes(BLOCK)


def block(index: int) -> bytes:
    """Block `index` of the test stream: a random mebibyte, numbered, so that a lost,
    repeated or reordered block changes the digest."""
    return index.to_bytes(8, "big") + _BASE[8:]


def blocks(size: int) -> Iterator[bytes]:
    return (block(i) for i in range(size // BLOCK))


def stream_digest(size: int) -> str:
    digest = hashlib.sha256()
    for piece in blocks(size):
        digest.update(piece)
    return digest.hexdigest()


# -- the project's server ----------------------------------------------------------------


def large_app() -> web.Application:
    """PUT …/upload digests what it receives; GET …/download?size=N[&chunked=1] sends the
    test stream; …/truncated and …/early misbehave (see tests/test_proxy_splice.py)."""

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        length = 0
        async for piece in request.content.iter_any():
            digest.update(piece)
            length += len(piece)
        return web.json_response(
            {
                "length": length,
                "sha256": digest.hexdigest(),
                "transfer_encoding": request.headers.get("Transfer-Encoding", ""),
            }
        )

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        response = web.StreamResponse()
        if request.query.get("chunked") == "1":
            response.enable_chunked_encoding()
        else:
            response.content_length = size
        await response.prepare(request)
        for piece in blocks(size):
            await response.write(piece)
        await response.write_eof()
        return response

    async def truncated(request: web.Request) -> web.StreamResponse:
        """Promises 4 MiB, sends 1 MiB, hangs up."""
        response = web.StreamResponse()
        response.content_length = 4 * BLOCK
        await response.prepare(request)
        await response.write(block(0))
        assert request.transport is not None
        request.transport.close()
        return response

    async def early(request: web.Request) -> web.Response:
        """Answers without reading the body."""
        return web.json_response({"error": "too large"}, status=413)

    app = web.Application()
    app.router.add_put("/{prefix:.*}/upload", upload)
    app.router.add_get("/{prefix:.*}/download", download)
    app.router.add_get("/{prefix:.*}/truncated", truncated)
    app.router.add_put("/{prefix:.*}/early", early)
    return app


# -- the client (run in a process of its own) --------------------------------------------


def transfer(url: str, headers: dict[str, str], direction: str, chunked: bool) -> dict[str, Any]:
    """One upload or download of SIZE bytes; what each end saw."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(loopback(parts.hostname or ""), parts.port, timeout=60)
    path = parts.path + ("?" + parts.query if parts.query else "")
    headers = {"Host": parts.netloc, **headers}
    if direction == "up":
        if not chunked:
            headers = {**headers, "Content-Length": str(SIZE)}
        conn.request("PUT", path, body=blocks(SIZE), headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        answer = json.loads(response.read())
        return {"status": response.status, "sent": stream_digest(SIZE), **answer}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    digest = hashlib.sha256()
    length = 0
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    while n := response.readinto(buffer):
        digest.update(view[:n])
        length += n
    return {
        "status": response.status,
        "length": length,
        "sha256": digest.hexdigest(),
        "sent": stream_digest(SIZE),
        "transfer_encoding": response.getheader("Transfer-Encoding", ""),
    }


def main() -> None:
    url, headers, direction, chunked = json.loads(sys.argv[1])
    print(json.dumps(transfer(url, headers, direction, chunked)))


# -- measuring ---------------------------------------------------------------------------


def rss() -> int:
    """This process's resident memory (the hub's: it runs in this process)."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def run_client(
    url: str, headers: dict[str, str], direction: str, chunked: bool
) -> tuple[dict[str, Any], int, float]:
    """The client's answer, the hub's largest RSS growth while it ran, and its seconds."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from tests.test_proxy_large import main; main()",
        json.dumps([url, headers, direction, chunked]),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
    )
    before = peak = rss()
    started = time.monotonic()
    finished = asyncio.ensure_future(process.communicate())
    try:
        async with asyncio.timeout(TRANSFER_SECONDS):
            while not finished.done():  # sample until the client is done
                peak = max(peak, rss())
                await asyncio.wait({finished}, timeout=0.02)
    finally:
        if process.returncode is None:
            process.kill()
    out, _ = await finished
    assert process.returncode == 0, out
    return json.loads(out), peak - before, time.monotonic() - started


@pytest.fixture
async def large_server(setup: dict[str, Any]) -> AsyncIterator[str]:  # noqa: F811
    """The base URL of the project's server, through the proxy."""
    with served_in(setup["owner"], setup["project_id"], "tests.test_proxy_large:large_app") as port:
        yield f"{setup['content']}/{setup['project_id']}/port/{port}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_gibibyte_each_way_in_constant_memory(
    setup: dict[str, Any],  # noqa: F811
    large_server: str,
    chunked: bool,
) -> None:
    headers = api(setup)
    up, up_growth, up_seconds = await run_client(large_server + "/upload", headers, "up", chunked)
    assert up["status"] == 200, up
    assert up["length"] == SIZE
    assert up["sha256"] == up["sent"]
    assert up["transfer_encoding"] == ("chunked" if chunked else "")

    query = f"?size={SIZE}" + ("&chunked=1" if chunked else "")
    down, down_growth, down_seconds = await run_client(
        large_server + "/download" + query, headers, "down", chunked
    )
    assert down["status"] == 200, down
    assert down["length"] == SIZE
    assert down["sha256"] == down["sent"]
    assert down["transfer_encoding"] == ("chunked" if chunked else "")

    mib = 1 << 20
    print(
        f"\n1 GiB up {up_seconds:.1f} s, hub RSS +{up_growth / mib:.1f} MiB;"
        f" down {down_seconds:.1f} s, hub RSS +{down_growth / mib:.1f} MiB"
    )
    assert up_growth < RSS_BOUND, f"the hub grew by {up_growth / mib:.0f} MiB during the upload"
    assert down_growth < RSS_BOUND, f"the hub grew by {down_growth / mib:.0f} MiB downloading"
