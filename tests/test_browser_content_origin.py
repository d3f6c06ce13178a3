"""A malicious project page, opened by a collaborator in a real browser, tries to act as
them on the hub and on another of their projects. Every attempt must fail, and the hub's
state must be unchanged; the page itself still works for its legitimate use."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any

import pytest
from aiohttp import web

from cocalc_k8s.keys import CONTENT_ORIGINS
from tests.conftest import unique_email
from tests.project_servers import served_in
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

EVIL_PAGE = """<!doctype html><meta charset=utf-8><title>innocent</title>
<h1 id=title>A useful project page</h1><pre id=results></pre>
<script>
const q = new URLSearchParams(location.search);
const hub = q.get("hub"), other = q.get("other"), port = q.get("port");
const results = {};
async function attempt(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = "blocked: " + e.name; }
}
(async () => {
  results.cookies = document.cookie;
  await attempt("read_account", async () => {
    const r = await fetch(hub + "/api/v2/account", {credentials: "include"});
    return "read " + r.status + " " + (await r.text());
  });
  await attempt("create_key_cors", async () => {
    const r = await fetch(hub + "/api/v2/api-keys", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({name: "stolen"})});
    return "read " + r.status + " " + (await r.text());
  });
  await attempt("create_key_no_cors", async () => {
    const r = await fetch(hub + "/api/v2/api-keys", {method: "POST", credentials: "include",
      mode: "no-cors", headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({name: "stolen"})});
    return "opaque " + r.type;
  });
  await attempt("add_collaborator", async () => {
    const r = await fetch(hub + "/api/v2/projects/" + other + "/collaborators", {
      method: "POST", credentials: "include", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({email: "evil@example.org"})});
    return "opaque " + r.type;
  });
  await attempt("other_project", async () => {
    const r = await fetch("/" + other + "/port/" + port + "/secret.txt", {credentials: "include"});
    return "read " + r.status + " " + (await r.text());
  });
  await attempt("other_project_hidden_referrer", async () => {
    const r = await fetch("/" + other + "/port/" + port + "/secret.txt",
      {credentials: "include", referrerPolicy: "no-referrer"});
    return "read " + r.status + " " + (await r.text());
  });
  const form = document.createElement("form");
  form.method = "POST"; form.action = hub + "/account/api-keys"; form.target = "sink";
  form.innerHTML = '<input name="name" value="stolen-by-form">';
  const sink = document.createElement("iframe"); sink.name = "sink";
  document.body.append(sink, form);
  sink.onload = () => {
    results.form_post = "submitted";
    document.getElementById("results").textContent = JSON.stringify(results);
  };
  form.submit();
})();
</script>"""


def evil_server_app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=EVIL_PAGE, content_type="text/html")

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text="the other project's secret")

    app = web.Application()
    app.router.add_get("/{prefix:.*}/evil.html", page)
    app.router.add_get("/{prefix:.*}/secret.txt", secret)
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("per_project", [False, True], ids=["shared-origin", "origin-per-project"])
async def test_a_malicious_project_page_cannot_act_as_its_visitor(
    browser: Any, make_client: Any, per_project: bool
) -> None:
    settings: dict[str, Any] = {}  # the default: an origin per project under .localhost
    if not per_project:  # the explicit opt-in
        port = _free_port()
        settings = {"content_port": port, "content_url": f"http://127.0.0.1:{port}"}
    client = await make_client(**settings)
    hub = str(client.make_url("")).rstrip("/")
    content_of = client.app[CONTENT_ORIGINS].url_for
    context = await browser.new_context()
    page = await context.new_page()
    servers = contextlib.ExitStack()
    try:
        # The visitor signs up in the browser: the context holds their hub session.
        await page.goto(hub + "/sign-up")
        await page.fill("input[name=name]", "Visitor")
        email = unique_email("visitor")
        await page.fill("input[name=email]", email)
        await page.fill("input[name=password]", "a long password")
        await page.click("form[data-testid=sign-up-form] button[type=submit]")
        await page.wait_for_url(hub + "/")
        cookies = await context.cookies(hub)
        client.session.cookie_jar.update_cookies({c["name"]: c["value"] for c in cookies})
        csrf = await (await client.get("/api/v2/account")).json()
        assert csrf["email"] == email
        visitor = User(client, {"csrf_token": await _csrf(page), **csrf})
        projects = []
        for title in ("evil", "other"):
            _, body = await visitor.call("POST", "/api/v2/projects", {"title": title})
            projects.append(str(body["project_id"]))
        evil, other = projects
        for project_id in projects:
            await visitor.call("POST", f"/api/v2/projects/{project_id}/start")
            await wait_state(visitor, project_id, "running")
        _, before_keys = await visitor.call("GET", "/api/v2/api-keys")
        _, before_other = await visitor.call("GET", f"/api/v2/projects/{other}")
        # Each project runs the same little server, on its own loopback.
        factory = "tests.test_browser_content_origin:evil_server_app"
        evil_port = servers.enter_context(served_in(visitor, evil, factory))
        other_port = servers.enter_context(served_in(visitor, other, factory))

        # The visitor has opened the other project's content before: its cookie exists.
        await page.goto(f"{content_of(other)}/{other}/port/{other_port}/secret.txt")
        assert "the other project's secret" in await page.content()
        url = (
            f"{content_of(evil)}/{evil}/port/{evil_port}/evil.html"
            f"?hub={hub}&other={other}&port={other_port}"
        )
        await page.goto(url)
        # It still works for its legitimate use: the visitor sees the page.
        await page.wait_for_selector("#title")
        results_text = await page.wait_for_function(
            "document.getElementById('results').textContent", timeout=30_000
        )
        results = json.loads(await results_text.json_value())
        assert "cocalc_session" not in results["cookies"]
        assert "cocalc_content" not in results["cookies"]
        assert results["read_account"].startswith("blocked")
        assert results["create_key_cors"].startswith("blocked")
        for name in ("other_project", "other_project_hidden_referrer"):
            # Shared origin: refused (403). Own origins: sent to the other project's origin,
            # where the request is refused and the browser hides even that (CORS).
            refused = ("blocked",) if per_project else ("read 403",)
            assert results[name].startswith(refused), (name, results[name])
            assert "secret" not in results[name]

        _, after_keys = await visitor.call("GET", "/api/v2/api-keys")
        _, after_other = await visitor.call("GET", f"/api/v2/projects/{other}")
        assert after_keys == before_keys == {"api_keys": []}
        assert after_other["collaborators"] == before_other["collaborators"]
    finally:
        servers.close()
        await context.close()
        for project_id in locals().get("projects", []):
            await client.post(
                f"/api/v2/projects/{project_id}/stop",
                headers={"X-CSRF-Token": visitor.headers["X-CSRF-Token"]},
            )


async def _csrf(page: Any) -> str:
    return str(await page.get_attribute("meta[name=csrf-token]", "content"))


async def test_jupyterlab_opens_and_runs_a_cell_through_the_proxy(
    browser: Any,
    make_client: Any,
) -> None:
    pytest.importorskip("jupyterlab")
    client = await make_client()
    hub = str(client.make_url("")).rstrip("/")
    content_of = client.app[CONTENT_ORIGINS].url_for
    context = await browser.new_context()
    page = await context.new_page()
    project_id = None
    try:
        await page.goto(hub + "/sign-up")
        await page.fill("input[name=name]", "Lab User")
        await page.fill("input[name=email]", "lab@example.org")
        await page.fill("input[name=password]", "a long password")
        await page.click("form[data-testid=sign-up-form] button[type=submit]")
        await page.wait_for_url(hub + "/")
        csrf = await _csrf(page)
        response = await page.request.post(
            hub + "/api/v2/projects", data={"title": "lab"}, headers={"X-CSRF-Token": csrf}
        )
        project_id = (await response.json())["project_id"]
        # The project is stopped: opening JupyterLab starts it, then the server.
        await page.goto(
            f"{content_of(project_id)}/{project_id}/port/jupyterlab/lab", timeout=90_000
        )
        launcher = page.locator(".jp-LauncherCard[data-category='Notebook']").first
        await launcher.click(timeout=60_000)
        await page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
        cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        await cell.click(timeout=30_000)
        await page.keyboard.type("6 * 7")
        await page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-OutputArea-output", has_text="42").first
        try:
            await output.wait_for(timeout=60_000)
        except Exception:
            await page.screenshot(path="/tmp/lab-failure.png")
            raise
    finally:
        await context.close()
        if project_id is not None:
            await client.post(
                f"/api/v2/projects/{project_id}/stop",
                headers={"X-CSRF-Token": csrf},
            )
