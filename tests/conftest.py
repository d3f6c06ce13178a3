"""Shared fixtures: one embedded PostgreSQL per test session, a fresh migrated database
per test module (cloned from a migrated template in milliseconds), real hubs on 127.0.0.1."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cocalc_k8s.app import create_app
from cocalc_k8s.cli import SHUTDOWN_TIMEOUT
from cocalc_k8s.core.settings import Settings
from cocalc_k8s.db.embedded import EmbeddedPostgres
from cocalc_k8s.db.migrate import upgrade
from cocalc_k8s.keys import CONTENT_GATE

TEMPLATE_DB = "cocalc_template"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp_path: a concurrent pytest run prunes old basetemp
    # directories, which would delete a running server's data.
    root = Path(tempfile.mkdtemp(prefix="cocalc-test-pg-"))
    server = EmbeddedPostgres(root)
    server.start()
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    upgrade(server.admin_url(TEMPLATE_DB))
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def _create_database(server: EmbeddedPostgres, *, template: str = TEMPLATE_DB) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def _drop_database(server: EmbeddedPostgres, name: str) -> None:
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def database_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database of this module's own."""
    name = _create_database(postgres)
    yield postgres.admin_url(name)
    _drop_database(postgres, name)


@pytest.fixture
def empty_database_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    name = _create_database(postgres, template="template0")
    yield postgres.admin_url(name)
    _drop_database(postgres, name)


@pytest.fixture
async def http(agent: Any) -> AsyncIterator[aiohttp.ClientSession]:
    """A session to the test module's own `agent` fixture (a real agent process) that
    sends the agent's token."""
    async with aiohttp.ClientSession(agent.url, headers=agent.headers) as session:
        yield session


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    def make(**overrides: Any) -> Settings:
        # The SSH server off unless asked: the default port 2222 is one for the machine,
        # and test workers run side by side.
        return Settings(**{"data_dir": tmp_path / "data", "ssh_port": 0, **overrides})

    return make


@pytest.fixture
async def make_client(make_settings: Any, database_url: str) -> AsyncIterator[Any]:
    """Start a hub on 127.0.0.1 with the given settings; returns an aiohttp TestClient."""
    clients: list[TestClient[Any, Any]] = []

    async def make(
        *, same_hub_as: TestClient[Any, Any] | None = None, **overrides: Any
    ) -> TestClient[Any, Any]:
        overrides.setdefault("content_port", 0)
        overrides.setdefault("ssh_port", 0)  # off: tests of SSH bind a free port themselves
        """A new hub, or with `same_hub_as` a second client (own cookies) of that hub."""
        if same_hub_as is not None:
            client = TestClient(same_hub_as.server)
            await client.start_server()
            clients.append(client)
            return client
        app = create_app(make_settings(**overrides), database_url=database_url)
        # As `serve` (cli.SHUTDOWN_TIMEOUT): requests still open when the hub stops are
        # cancelled after a bound, not awaited for aiohttp's default minute (a WebSocket
        # whose browser has stalled never finishes its close).
        server = TestServer(app, host="127.0.0.1")
        # (TestServer ignores runner options given to its constructor: they go here.)
        await server.start_server(shutdown_timeout=SHUTDOWN_TIMEOUT)
        client = TestClient(server)
        await client.start_server()
        # The hub's port is known only now: the content origin sends browsers back here.
        app[CONTENT_GATE].hub_url = str(client.make_url("")).rstrip("/")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await closed_within(client.close(), "the hub")


CLOSE_DEADLINE = 45.0


async def closed_within(closing: Any, what: str) -> None:
    """Await `closing`; if it hangs, fail with what every task of the loop was waiting on
    (a teardown that hung once under CI said nothing about where)."""
    try:
        async with asyncio.timeout(CLOSE_DEADLINE):
            await closing
    except TimeoutError:
        current = asyncio.current_task()
        stacks = []
        for task in asyncio.all_tasks():
            if task is not current:
                out = io.StringIO()
                task.print_stack(limit=8, file=out)
                stacks.append(out.getvalue())
        pytest.fail(
            f"{what} did not close within {CLOSE_DEADLINE:.0f} s; the loop's tasks:\n"
            + "\n".join(stacks)
        )


@pytest.fixture
async def client(make_client: Any) -> TestClient[Any, Any]:
    return await make_client()


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.org"


async def sign_up(
    client: TestClient[Any, Any], *, email: str | None = None, password: str = "correct horse"
) -> dict[str, Any]:
    """Sign up through the API; the client's cookie jar keeps the session."""
    email = email or unique_email()
    resp = await client.post(
        "/api/v2/auth/sign-up", json={"email": email, "password": password, "name": "Test User"}
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return {"email": email, "password": password, **body}


def _browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"no Chromium at {CHROMIUM}"
    return None


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so fixtures can tell a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


async def _screenshots_of_failure(request: pytest.FixtureRequest, chromium: Any) -> None:
    """A failed browser test leaves a screenshot of every page it had open in
    $COCALC_SHOTS, or test-artifacts/ (CI keeps that folder)."""
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    folder = Path(os.environ.get("COCALC_SHOTS") or ARTIFACTS)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.nodeid)
    pages = [page for context in chromium.contexts for page in context.pages]
    for number, page in enumerate(pages):
        path = folder / f"{name}-{number}.png"
        try:
            await page.screenshot(path=str(path), full_page=True, timeout=5_000)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"no screenshot of page {number}: {exc}")
        else:
            print(f"screenshot of the failure: {path}")


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Debian's Chromium, headless, through Playwright. Skipped when either is missing,
    except under CI (the CI variable set), where that is a failure. A failing test leaves
    screenshots of its pages (see `_screenshots_of_failure`)."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium under CI: {missing}")
        pytest.skip(missing)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
            await _screenshots_of_failure(request, chromium)
        finally:
            await closed_within(chromium.close(), "Chromium")
