"""A page of project A attacks project B in a real browser, as their common collaborator.

The attacker owns A and has added the victim to it; B is the victim's own project, whose
content the victim has opened before (its content cookie exists). With an origin per
project (the default) every attempt fails: reading B with a forged Referer, writing into
B, scripting an iframe of B, a Service Worker of A controlling B's pages. The shared
origin (an explicit opt-in) protects against none of that except the Service Worker,
which is refused there. A project page cannot toss cookies onto the hub either."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from cocalc_k8s.keys import CONTENT_ORIGINS
from tests.conftest import sign_up
from tests.project_servers import served_in
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _session_cookie(token: str, hub: str) -> dict[str, Any]:
    """The hub's session cookie as the hub sets it over HTTP (signing in through the
    pages is tested elsewhere)."""
    return {
        "name": "cocalc_session",
        "value": token,
        "url": hub,
        "httpOnly": True,
        "sameSite": "Lax",
    }


@dataclass
class Scene:
    victim: User
    hub: str
    a: str  # the attacker's project, the victim a collaborator
    b: str  # the victim's own project
    a_port: int
    b_port: int
    context: Any  # the victim's browser, signed in to the hub

    def origin(self, project_id: str) -> str:
        return str(self.victim.client.app[CONTENT_ORIGINS].url_for(project_id))

    def url(self, project_id: str, port: int, page: str) -> str:
        return f"{self.origin(project_id)}/{project_id}/port/{port}/{page}"


@contextlib.asynccontextmanager
async def _scene(make_client: Any, browser: Any, settings: dict[str, Any]) -> AsyncIterator[Scene]:
    client = await make_client(**settings)
    victim = User(client, await sign_up(client))
    attacker_client = await make_client(same_hub_as=client)
    attacker = User(attacker_client, await sign_up(attacker_client))
    a = await new_project(attacker, "useful")
    status, _ = await attacker.call(
        "POST", f"/api/v2/projects/{a}/collaborators", {"email": victim.info["email"]}
    )
    assert status == 201
    b = await new_project(victim, "private")
    resp = await client.put(
        f"/api/v2/projects/{b}/files/secret.txt",
        data=b"the victim's secret",
        headers=victim.headers,
    )
    assert resp.status == 201
    for user, project_id in ((attacker, a), (victim, b)):
        await user.call("POST", f"/api/v2/projects/{project_id}/start")
        await wait_state(user, project_id, "running", deadline=60)
    hub = str(client.make_url("")).rstrip("/")
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))["cocalc_session"]
    context = await browser.new_context()
    await context.add_cookies([_session_cookie(session.value, hub)])
    factory = "tests.origin_servers:attack_app"
    with contextlib.ExitStack() as servers:
        a_port = servers.enter_context(served_in(attacker, a, factory))
        b_port = servers.enter_context(served_in(victim, b, factory))
        try:
            yield Scene(victim, hub, a, b, a_port, b_port, context)
        finally:
            await context.close()
            await attacker.call("POST", f"/api/v2/projects/{a}/stop")
            await victim.call("POST", f"/api/v2/projects/{b}/stop")


@pytest.fixture(params=["origin-per-project", "shared-origin"])
async def scene(request: Any, make_client: Any, browser: Any) -> AsyncIterator[Scene]:
    settings: dict[str, Any] = {}  # the default: an origin per project under .localhost
    if request.param == "shared-origin":
        port = _free_port()
        settings = {"content_port": port, "content_url": f"http://127.0.0.1:{port}"}
    async with _scene(make_client, browser, settings) as made:
        yield made


async def _results(page: Any) -> dict[str, str]:
    await page.wait_for_selector("#title")
    text = await page.wait_for_function(
        "document.getElementById('results').textContent", timeout=60_000
    )
    return dict(json.loads(await text.json_value()))


async def test_a_project_page_cannot_reach_another_project(scene: Scene) -> None:
    per_project = scene.victim.client.app[CONTENT_ORIGINS].per_project
    page = await scene.context.new_page()
    # The victim has opened B before: B's content cookie exists in the browser.
    await page.goto(scene.url(scene.b, scene.b_port, "page.html"))
    assert await page.text_content("#page") == "the victim's page"
    await page.goto(
        scene.url(scene.a, scene.a_port, "evil.html")
        + f"?other={scene.b}&other_origin={scene.origin(scene.b)}"
        f"&other_port={scene.b_port}&hub={scene.hub}"
    )
    results = await _results(page)

    # The Service Worker: with an origin per project it is A's alone; on a shared origin
    # the script is refused (and Service-Worker-Allowed stripped), so no scope '/'.
    if per_project:
        assert results["service_worker"] in (
            f"registered {scene.origin(scene.a)}/",
            "blocked: SecurityError",
        ), results
    else:
        assert results["service_worker"].startswith("blocked"), results
    victim_page = await scene.context.new_page()
    await victim_page.goto(scene.url(scene.b, scene.b_port, "page.html"))
    assert await victim_page.text_content("#page") == "the victim's page"
    assert await victim_page.evaluate("navigator.serviceWorker.controller") is None

    status, _ = await scene.victim.call("GET", f"/api/v2/projects/{scene.b}/files/planted.txt")
    if not per_project:
        return  # a shared origin gives no protection between projects (the README says so)
    assert status == 404, "a page of A wrote into B"
    for name in ("read_forged_referrer", "read_other_origin"):
        assert results[name].startswith("blocked"), (name, results[name])
        assert "secret" not in results[name]
    for name in ("put_forged_referrer", "put_other_origin"):
        assert results[name].startswith("blocked"), (name, results[name])
    assert results["iframe"].startswith("blocked"), results["iframe"]


@pytest.mark.parametrize("hub_host", ["127.0.0.1", "localhost"])
async def test_a_project_page_cannot_toss_cookies_onto_the_hub(
    make_client: Any, browser: Any, hub_host: str
) -> None:
    """The hub on 127.0.0.1 or on localhost, the parent name of every project host: the
    session the hub sees and the CSRF token of its pages stay the same."""
    async with _scene(make_client, browser, {}) as scene:
        port = scene.victim.client.make_url("/").port
        hub = f"http://{hub_host}:{port}"
        token = scene.victim.client.session.cookie_jar.filter_cookies(
            scene.victim.client.make_url("/")
        )["cocalc_session"].value
        await scene.context.add_cookies([_session_cookie(token, hub)])
        page = await scene.context.new_page()
        await page.goto(hub + "/")
        csrf = await page.get_attribute("meta[name=csrf-token]", "content")
        assert csrf

        await page.goto(scene.url(scene.a, scene.a_port, "toss.html"))
        await page.wait_for_function("document.getElementById('done').textContent")

        sent = [c for c in await scene.context.cookies(hub) if "cocalc_session" in c["name"]]
        assert [c["value"] for c in sent] == [token], sent
        answer = await page.request.get(hub + "/api/v2/account")
        assert answer.status == 200
        assert (await answer.json())["account_id"] == scene.victim.account_id
        await page.goto(hub + "/")
        assert await page.get_attribute("meta[name=csrf-token]", "content") == csrf
