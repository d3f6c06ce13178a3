"""PostgreSQL restarted mid-typing (an immediate shutdown: a crash, recovered from the WAL
at start): the clients' updates are refused as `unavailable` meanwhile and sent again
(docs/realtime.md), the hub reconnects by itself, and every edit a client saw
acknowledged is in the document once and in the file soon after."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cocalc_k8s.app import create_app
from cocalc_k8s.db.embedded import EmbeddedPostgres
from cocalc_k8s.db.migrate import upgrade
from cocalc_k8s.keys import CONTENT_GATE
from tests.realtime.client import DocClient, wait_for
from tests.realtime.conftest import member
from tests.realtime.test_files import home, read
from tests.test_projects_api import new_project

DATABASE = "restart"


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A server of this test's own (the session's is shared by every other test)."""
    root = Path(tempfile.mkdtemp(prefix="cocalc-test-pg-restart-"))
    server = EmbeddedPostgres(root)
    server.start()
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    upgrade(server.admin_url(DATABASE))
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def hub(own_postgres: EmbeddedPostgres, make_settings: Any) -> AsyncIterator[Any]:
    settings = make_settings(content_port=0, ssh_port=0)  # (0: no SSH gateway)
    app = create_app(settings, database_url=own_postgres.admin_url(DATABASE))
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    app[CONTENT_GATE].hub_url = str(client.make_url("")).rstrip("/")
    yield client
    await client.close()


def crash_and_restart(server: EmbeddedPostgres) -> None:
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGQUIT)  # immediate shutdown: no checkpoint, recovery at start
    server.stop()  # (it is gone: this only waits for it and frees the data directory)
    server.start()


async def test_postgres_restarted_mid_typing_loses_nothing_acknowledged(
    hub: Any, own_postgres: EmbeddedPostgres
) -> None:
    alice = await member(hub)
    project_id = await new_project(alice.user)
    client = alice.client()
    await client.connect()
    await client.join(project_id, "typing.txt")
    acked: list[str] = []
    refused = 0
    done = asyncio.Event()

    async def typist(name: str) -> None:
        nonlocal refused
        for i in range(100_000):
            if done.is_set():
                return
            token = f"<{name}{i}>"
            update = client.edit(len(client.ytext), token)
            while not (ack := await client.send(update)).get("ok"):
                assert ack["error"]["code"] == "unavailable", ack
                refused += 1
                await asyncio.sleep(0.05)  # the browser's backoff, shortened
            acked.append(token)

    async def restart_when_typing() -> None:
        await wait_for(lambda: len(acked) >= 60, within=30)
        await asyncio.to_thread(crash_and_restart, own_postgres)
        before = len(acked)
        await wait_for(lambda: len(acked) >= before + 60, within=60)  # typing goes on
        done.set()

    await asyncio.wait_for(asyncio.gather(restart_when_typing(), *(typist(n) for n in "abcd")), 120)
    assert refused > 0  # the outage was seen, and ridden out by sending again
    reader = DocClient(alice.url, key=alice.key)
    await reader.connect()
    await reader.join(project_id, "typing.txt")
    for token in acked:
        assert reader.text.count(token) == 1, token
    file = home(alice, project_id) / "typing.txt"
    await wait_for(lambda: all(token in (read(file) or "") for token in acked), within=5)
    await reader.close()
    await client.close()
