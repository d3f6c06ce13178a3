"""Health, readiness, metrics and admins."""

from __future__ import annotations

import gc
import re
import socket
import uuid
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest

from tests.conftest import sign_up, unique_email

Client = TestClient[Any, Any]


async def test_healthz_and_readyz(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_is_503_when_the_database_is_unreachable(
    make_settings: Any, tmp_path: Any
) -> None:
    from aiohttp.test_utils import TestServer

    from cocalc_k8s.app import create_app

    app = create_app(
        make_settings(), database_url=f"postgresql://nobody@/none?host={tmp_path}&port=1"
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.get("/healthz")).status == 200
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["status"] == "unavailable"


async def test_first_account_becomes_admin_when_asked(make_client: Any, postgres: Any) -> None:
    # A database of its own: "first" must really be the first account.
    from tests.conftest import _create_database, _drop_database

    name = _create_database(postgres)
    try:
        from aiohttp.test_utils import TestServer

        from cocalc_k8s.app import create_app
        from cocalc_k8s.core.settings import Settings

        settings = Settings(data_dir=postgres.root / "first-admin", first_account_admin=True)
        app = create_app(settings, database_url=postgres.admin_url(name))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await sign_up(client)
            assert (await (await client.get("/api/v2/account")).json())["is_admin"] is True
            client.session.cookie_jar.clear()
            await sign_up(client)
            assert (await (await client.get("/api/v2/account")).json())["is_admin"] is False
    finally:
        _drop_database(postgres, name)


async def test_admin_email_becomes_admin_at_sign_up(make_client: Any) -> None:
    email = unique_email("boss")
    client = await make_client(admin_email=email.upper())
    await sign_up(client, email=email)
    assert (await (await client.get("/api/v2/account")).json())["is_admin"] is True


async def test_metrics_are_admin_only(make_client: Any) -> None:
    admin_email = unique_email("admin")
    admin = await make_client(admin_email=admin_email)
    me = await sign_up(admin, email=admin_email)
    await admin.delete(
        "/api/v2/api-keys/0b9b3c52-9d4e-4a43-9df0-7d9a1f0d3a11",
        headers={"X-CSRF-Token": me["csrf_token"]},
    )
    user = await make_client()
    await sign_up(user)
    anonymous = await make_client()

    assert (await anonymous.get("/metrics")).status == 401
    assert (await user.get("/metrics")).status == 403
    resp = await admin.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    for name in (
        "cocalc_http_requests_total",
        "cocalc_http_request_duration_seconds_bucket",
        "cocalc_event_loop_lag_seconds",
        "cocalc_db_pool_checked_out",
        "cocalc_gc_pause_seconds_bucket",
        "cocalc_gc_frozen_objects",
    ):
        assert name in text, name
    # Routes are labelled by pattern, so ids never become label values.
    assert 'route="/api/v2/api-keys/{key_id}",status="404"' in text
    assert "0b9b3c52" not in text


async def test_garbage_collections_are_timed_by_generation(client: Client) -> None:
    from cocalc_k8s.keys import METRICS

    def full_collections() -> float:
        client.app[METRICS].observe_gc()  # (what the lag probe does twice a second)
        text = generate_latest(client.app[METRICS].registry).decode()
        prefix = 'cocalc_gc_pause_seconds_count{generation="2"}'
        return float(next(x for x in text.splitlines() if x.startswith(prefix)).split()[1])

    before = full_collections()
    gc.collect()
    gc.collect()
    assert full_collections() >= before + 2  # (and any the tests' own work started)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_separate_metrics_port_needs_no_sign_in(client: Client) -> None:
    from cocalc_k8s.keys import CONNECTIONS, METRICS
    from cocalc_k8s.web.metrics import start_metrics_site

    port = _free_port()
    runner = await start_metrics_site(client.app[METRICS], "127.0.0.1", port)
    try:
        await client.get("/healthz")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
                assert 'route="/healthz"' in text
                assert 'cocalc_connected_clients{kind="terminal"} 0.0' in text
            close = client.app[CONNECTIONS].opened("terminal", uuid.uuid4())
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
                assert 'cocalc_connected_clients{kind="terminal"} 1.0' in text
                assert "cocalc_connected_accounts 1.0" in text
            close()
            async with session.get(f"http://127.0.0.1:{port}/api/v2/account") as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()


async def test_security_headers_on_api_and_pages(client: Client) -> None:
    for path in ("/", "/api/v2/account"):
        resp = await client.get(path)
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_errors_never_leak_tracebacks(client: Client) -> None:
    resp = await client.get("/api/v2/api-keys/../../etc/passwd")
    text = await resp.text()
    assert resp.status in (404, 405)
    assert "Traceback" not in text


async def test_static_files_are_versioned_and_cached(client: Client) -> None:
    html = await (await client.get("/")).text()
    match = re.search(r'href="(/static/style\.css\?v=[^"]+)"', html)
    assert match, "the stylesheet link carries a content version"
    resp = await client.get(match.group(1))
    assert resp.status == 200
    assert "immutable" in resp.headers["Cache-Control"]
    resp = await client.get("/static/style.css")
    assert resp.headers["Cache-Control"] == "no-cache"
