"""The project pages over real HTTP: rendering, access control, CSP, escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from cocalc_k8s.web.pages_projects import relative_time
from tests.conftest import sign_up

Client = TestClient[Any, Any]


async def account(client: Client) -> dict[str, Any]:
    """Sign up; the client then sends the session's CSRF token with every request."""
    user = await sign_up(client)
    client.session.headers["X-CSRF-Token"] = user["csrf_token"]
    return user


async def create(client: Client, title: str = "Thesis", description: str = "") -> str:
    resp = await client.post("/api/v2/projects", json={"title": title, "description": description})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["project_id"])


def csrf_of(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert match
    return match.group(1)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (5, "just now"),
        (60, "1 minute ago"),
        (150, "3 minutes ago"),
        (3600, "1 hour ago"),
        (86400 * 3, "3 days ago"),
        (86400 * 40, "2024-11-22"),
    ],
)
def test_relative_time(seconds: int, expected: str) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert relative_time(now - timedelta(seconds=seconds), now) == expected
    assert relative_time(None, now) == "never"


@pytest.mark.parametrize(
    "path",
    ["/projects", "/projects/00000000-0000-0000-0000-000000000000/files/a/b"],
)
async def test_anonymous_visitors_are_sent_to_sign_in(client: Client, path: str) -> None:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/sign-in?next=" + path


async def test_projects_page_lists_projects_with_state_and_links(client: Client) -> None:
    await account(client)
    project_id = await create(client, "Thesis", "chapter drafts")
    resp = await client.get("/projects")
    assert resp.status == 200
    html = await resp.text()
    assert f'href="/projects/{project_id}"' in html
    assert "Thesis" in html and "chapter drafts" in html
    assert 'class="state state-stopped"' in html
    assert "edited <time" in html and "just now" in html
    assert 'data-testid="nav-projects"' in html
    assert 'src="/static/projects.js?v=' in html


async def test_projects_page_search_and_hidden_work_without_javascript(client: Client) -> None:
    await account(client)
    keep = await create(client, "Alpha")
    hidden = await create(client, "Beta")
    resp = await client.patch(f"/api/v2/projects/{hidden}", json={"hidden": True})
    assert resp.status == 200
    html = await (await client.get("/projects")).text()
    assert keep in html and hidden not in html
    html = await (await client.get("/projects?hidden=all")).text()
    assert keep in html and hidden in html and "Unhide" in html
    html = await (await client.get("/projects?search=alp")).text()
    assert keep in html and hidden not in html
    html = await (await client.get("/projects?search=zzz")).text()
    assert "No project matches “zzz”." in html


async def test_create_project_with_the_form(client: Client) -> None:
    await account(client)
    token = csrf_of(await (await client.get("/projects")).text())
    resp = await client.post(
        "/projects", data={"title": "From the form", "csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 303
    location = resp.headers["Location"]
    assert re.fullmatch(r"/projects/[0-9a-f-]{36}", location)
    html = await (await client.get(location)).text()
    assert "From the form" in html


async def test_create_project_form_error_keeps_the_page(client: Client) -> None:
    await account(client)
    token = csrf_of(await (await client.get("/projects")).text())
    resp = await client.post("/projects", data={"title": "   ", "csrf_token": token})
    assert resp.status == 400
    assert "title is required" in await resp.text()


@pytest.mark.parametrize(
    ("tab", "path"),
    [
        ("", ""),
        ("/files/", ""),
        ("/files/a/b/", "a/b"),
        ("/edit/notes.md", "notes.md"),
        ("/terminal", ""),
        ("/settings", ""),
    ],
)
async def test_project_page_renders_each_tab(client: Client, tab: str, path: str) -> None:
    await account(client)
    project_id = await create(client, "Physics", "lab notes")
    resp = await client.get(f"/projects/{project_id}{tab}")
    assert resp.status == 200
    html = await resp.text()
    assert 'data-testid="project-title">Physics</h1>' in html
    assert "lab notes" in html
    name = tab.strip("/").split("/")[0] or "files"
    assert re.search(rf'id="panel-{name}" data-testid="panel-{name}" aria-label="\w+">', html)
    assert f'data-tab="{name}" aria-current="page"' in html
    assert "&#34;path&#34;: &#34;" + path + "&#34;" in html
    assert 'src="/static/project.js?v=' in html
    # The first tab's modules are preloaded, each one served (a stale name is a miss).
    preloaded = re.findall(r'<link rel="modulepreload" href="(/static/[^"?]+)">', html)
    assert "/static/api.js" in preloaded and len(preloaded) >= 2
    for url in preloaded:
        assert (await client.get(url)).status == 200, url
    if name == "edit":  # CodeMirror's chunks too, not discovered one import at a time
        assert sum("/codemirror-" in url for url in preloaded) >= 3


async def test_lifecycle_buttons_wait_for_the_script(client: Client) -> None:
    # A click before project.js wired the buttons did nothing (a loaded machine loads the
    # module late): they come disabled, and only the ones for the state are shown.
    await account(client)
    project_id = await create(client)
    html = await (await client.get(f"/projects/{project_id}")).text()
    buttons = dict(re.findall(r'<button [^>]*data-action="(\w+)"([^>]*)>', html))
    assert set(buttons) == {"start", "restart", "stop"}
    assert all(attrs.rstrip().endswith("disabled") for attrs in buttons.values()), buttons
    assert "hidden" not in buttons["start"]
    assert "hidden" in buttons["restart"] and "hidden" in buttons["stop"]  # stopped


async def test_edit_without_a_path_goes_to_files(client: Client) -> None:
    await account(client)
    project_id = await create(client)
    resp = await client.get(f"/projects/{project_id}/edit/", allow_redirects=False)
    assert resp.status in (303, 404)


async def test_strangers_and_bad_ids_get_a_clear_404(client: Client, make_client: Any) -> None:
    await account(client)
    project_id = await create(client, "Secret plans")
    stranger = await make_client(same_hub_as=client)
    await account(stranger)
    for path in (f"/projects/{project_id}", f"/projects/{project_id}/settings", "/projects/nope"):
        resp = await stranger.get(path)
        assert resp.status == 404, path
        html = await resp.text()
        assert "Project not found" in html
        assert "Secret plans" not in html
    resp = await stranger.get(f"/projects/{project_id}/elsewhere")
    assert resp.status == 404


async def test_collaborator_sees_the_project(client: Client, make_client: Any) -> None:
    await account(client)
    project_id = await create(client, "Shared work")
    friend = await make_client(same_hub_as=client)
    user = await account(friend)
    resp = await client.post(
        f"/api/v2/projects/{project_id}/collaborators", json={"email": user["email"]}
    )
    assert resp.status == 201
    html = await (await friend.get("/projects")).text()
    assert "Shared work" in html and "shared with you" in html
    assert (await friend.get(f"/projects/{project_id}")).status == 200


async def test_pages_send_the_strict_csp(client: Client) -> None:
    await account(client)
    project_id = await create(client)
    for path in ("/projects", f"/projects/{project_id}"):
        resp = await client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp
        assert "unsafe-inline" not in csp
        html = await resp.text()
        assert "<script>" not in html and " style=" not in html


async def test_titles_and_descriptions_are_escaped(client: Client) -> None:
    await account(client)
    evil = '<script>alert("x")</script>'
    project_id = await create(client, evil, evil)
    for path in ("/projects", f"/projects/{project_id}"):
        html = await (await client.get(path)).text()
        assert evil not in html
        assert "&lt;script&gt;" in html


async def test_landing_links_signed_in_users_to_projects(client: Client) -> None:
    await account(client)
    html = await (await client.get("/")).text()
    assert 'href="/projects"' in html


async def test_static_modules_and_vendored_bundles_are_served(client: Client) -> None:
    for name in (
        "project.js",
        "project-files.js",
        "project-editor.js",
        "project-terminal.js",
        "project-settings.js",
        "vendor/codemirror-6.43.15.js",
        "vendor/xterm-6.0.0.js",
        "vendor/xterm-6.0.0.css",
        "vendor/yjs-13.6.33.js",
        "vendor/socket.io-client-4.8.4.js",
        "vendor/LICENSES.txt",
    ):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200, name


async def test_project_page_links_servers_on_the_content_origin(client: Any) -> None:
    from cocalc_k8s.keys import CONTENT_ORIGINS
    from tests.conftest import sign_up

    user = await sign_up(client)
    resp = await client.post(
        "/api/v2/projects", json={"title": "Servers"}, headers={"X-CSRF-Token": user["csrf_token"]}
    )
    project_id = (await resp.json())["project_id"]
    html = await (await client.get(f"/projects/{project_id}/files/")).text()
    content = client.app[CONTENT_ORIGINS].url_for(project_id)  # the project's own origin
    assert content.endswith(".localhost:" + str(urlsplit(content).port))
    assert f'href="{content}/{project_id}/port/jupyterlab/lab"' in html
    assert f'id="port-form" data-content="{content}/{project_id}"' in html
    assert 'type="number" min="1" max="65535"' in html
    assert not content.startswith(str(client.make_url("")).rstrip("/"))  # another origin
