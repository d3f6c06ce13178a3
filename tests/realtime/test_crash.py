"""SIGKILL of the hub mid-typing loses nothing acknowledged: after a restart every edit
the client saw acknowledged is in the document at once, and in the file soon after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unique_email
from tests.realtime.client import DocClient, wait_for
from tests.test_cli import Api, Hub, free_port, hub_env


@pytest.fixture
def hubs() -> Iterator[list[Hub]]:
    started: list[Hub] = []
    yield started
    for hub in started:
        hub.kill()


def start_hub(hubs: list[Hub], data_dir: Path, port: int, database_url: str) -> str:
    hub = Hub(
        "--data-dir", str(data_dir), "--port", str(port), env=hub_env(DATABASE_URL=database_url)
    )
    hubs.append(hub)
    url = hub.wait_url()
    Api(url).wait_ready()
    return url


def account_with_project(url: str) -> tuple[str, str]:
    api = Api(url)
    api.sign_up(unique_email())
    status, project, _ = api.request("POST", "/api/v2/projects", {"title": "Crash"})
    assert status == 201, project
    status, key, _ = api.request("POST", "/api/v2/api-keys", {"name": "typing"})
    assert status == 201, key
    return str(project["project_id"]), str(key["key"])


async def test_sigkill_mid_typing_loses_nothing_acknowledged(
    tmp_path: Path, database_url: str, hubs: list[Hub]
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    url = await asyncio.to_thread(start_hub, hubs, data_dir, port, database_url)
    project_id, key = await asyncio.to_thread(account_with_project, url)
    client = DocClient(url, key=key)
    await client.connect()
    await client.join(project_id, "typing.txt")
    client.call_timeout = 5.0  # a dead hub answers nothing: its typists stop
    acked: list[str] = []

    async def typist(name: str) -> None:
        for i in range(100_000):
            token = f"<{name}{i}>"
            try:
                ack = await client.append(token)
            except Exception:  # the hub is gone: stop typing
                return
            if not ack.get("ok"):
                return
            acked.append(token)
            if len(acked) == 150:
                hubs[0].process.kill()  # SIGKILL, with other edits in flight

    await asyncio.wait_for(asyncio.gather(*(typist(n) for n in "abcd")), 60)
    assert len(acked) >= 150
    with contextlib.suppress(Exception):
        await client.close()
    hubs[0].process.wait(10)

    url = await asyncio.to_thread(start_hub, hubs, data_dir, port, database_url)
    reader = DocClient(url, key=key)
    await reader.connect()
    await reader.join(project_id, "typing.txt")
    for token in acked:
        assert reader.text.count(token) == 1, token
    file = data_dir / "projects" / project_id / "typing.txt"

    def saved() -> bool:
        text = file.read_text() if file.exists() else ""
        return all(token in text for token in acked)

    await wait_for(saved, within=5)
    await reader.close()
