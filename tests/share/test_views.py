"""The share pages and raw files through a real hub: rendering, access by visibility,
confinement to the published path in every URL form, caching, robots and sitemap,
vanity URLs, admin switches."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from yarl import URL

from cocalc_k8s.share.headers import SHARE_CSP
from cocalc_k8s.share.keys import VIEWS
from tests.share.helpers import home_of, publish, write
from tests.test_projects_api import User, new_project


async def raw_status(user: User, target: str) -> int:
    """GET `target` sent byte for byte (no client-side normalisation of `..` or `%2e`)."""
    url = user.client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def setup_folder(
    make_user: Any, visibility: str = "listed"
) -> tuple[User, str, dict[str, Any]]:
    alice = await make_user()
    project_id = await new_project(alice, "Course")
    home = home_of(alice, project_id)
    write(home, "pub/README.md", "# Welcome\n\nSee [the notes](notes.md).")
    write(home, "pub/notes.md", "Math: $a_1$\n\n![pic](img/p.png)")
    write(home, "pub/img/p.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    write(home, "pub/code.py", "print('hi')\n")
    write(home, "pub/page.html", "<h1>hi</h1><script>alert(1)</script>")
    write(home, "pub/data.bin", bytes(range(256)))
    write(home, "pub/.secret", "token")
    write(home, "private.txt", "not published")
    item = await publish(
        alice,
        project_id,
        path="pub",
        name="course",
        visibility=visibility,
        description="Lecture *notes*",
        license="MIT",
    )
    return alice, project_id, item


async def test_folder_page_lists_and_renders_readme(make_user: Any) -> None:
    alice, _, item = await setup_folder(make_user)
    reader = await make_user(same_hub_as=alice)
    resp = await reader.client.get(f"/share/{item['id']}")
    assert resp.status == 200
    html = await resp.text()
    assert resp.headers["Content-Security-Policy"] == SHARE_CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for name in ("README.md", "notes.md", "img/", "code.py"):
        assert name in html
    assert ".secret" not in html
    assert 'data-testid="share-readme"' in html and ">Welcome</h1>" in html
    assert f'href="/share/{item["id"]}/notes.md"' in html
    assert "MIT" in html and "<em>notes</em>" in html
    assert 'data-testid="share-edit"' not in html  # not a collaborator
    own = await alice.client.get(f"/share/{item['id']}")
    assert 'data-testid="share-edit"' in await own.text()


async def test_file_kinds(make_user: Any) -> None:
    alice, _, item = await setup_folder(make_user)
    base = f"/share/{item['id']}"
    html = await (await alice.client.get(f"{base}/notes.md")).text()
    assert '<span class="math-inline">a_1</span>' in html
    assert f'src="/share/raw/{item["id"]}/img/p.png"' in html
    html = await (await alice.client.get(f"{base}/code.py")).text()
    assert '<tr id="L1">' in html and '<span class="nb">print</span>' in html
    html = await (await alice.client.get(f"{base}/page.html")).text()
    assert "<script>alert" not in html and "&lt;" in html  # the source, escaped
    assert f'<iframe sandbox src="/share/raw/{item["id"]}/page.html?render=1"' in html
    html = await (await alice.client.get(f"{base}/img/p.png")).text()
    assert f'<img class="share-image" src="/share/raw/{item["id"]}/img/p.png"' in html
    html = await (await alice.client.get(f"{base}/data.bin")).text()
    assert 'data-testid="share-binary"' in html


async def test_raw_streams_with_range_and_safe_headers(make_user: Any) -> None:
    alice, _, item = await setup_folder(make_user)
    reader = await make_user(same_hub_as=alice)
    raw = f"/share/raw/{item['id']}"
    resp = await reader.client.get(f"{raw}/data.bin", headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    assert await resp.read() == bytes(range(10, 20))
    assert resp.headers["Content-Range"] == "bytes 10-19/256"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"].startswith("sandbox")
    etag = resp.headers["ETag"]
    assert (
        await reader.client.get(f"{raw}/data.bin", headers={"If-None-Match": etag})
    ).status == 304
    resp = await reader.client.get(f"{raw}/page.html")
    assert resp.headers["Content-Disposition"].startswith("attachment")
    resp = await reader.client.get(f"{raw}/page.html?render=1")
    assert "Content-Disposition" not in resp.headers
    csp = resp.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;") and "allow-" not in csp and "frame-ancestors 'self'" in csp
    assert (await reader.client.get(f"{raw}/img")).status == 404  # a folder has no bytes


async def test_rendered_pages_are_cached_with_etag(make_user: Any) -> None:
    alice, project_id, item = await setup_folder(make_user)
    url = f"/share/{item['id']}/notes.md"
    first = await alice.client.get(url)
    etag = first.headers["ETag"]
    again = await alice.client.get(url, headers={"If-None-Match": etag})
    assert again.status == 304
    path = home_of(alice, project_id) / "pub/notes.md"
    path.write_text("changed $b_2$")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    changed = await alice.client.get(url, headers={"If-None-Match": etag})
    assert changed.status == 200
    assert '<span class="math-inline">b_2</span>' in await changed.text()


async def test_nothing_outside_the_published_path(make_user: Any) -> None:
    alice, project_id, item = await setup_folder(make_user)
    home = home_of(alice, project_id)
    other = await make_user(same_hub_as=alice)
    other_home = home_of(other, await new_project(other, "Other"))
    write(other_home, "theirs.txt", "other project")
    os.symlink("../private.txt", home / "pub/up")
    os.symlink(str(home / "private.txt"), home / "pub/abs")
    os.symlink(str(other_home / "theirs.txt"), home / "pub/other")
    os.symlink("/etc/passwd", home / "pub/etc")
    os.symlink("..", home / "pub/parent")
    sid = item["id"]
    forms = [
        "../private.txt",
        "%2e%2e/private.txt",
        "%2E%2E%2Fprivate.txt",
        "img/../../private.txt",
        "img/%2e%2e/%2e%2e/private.txt",
        "..%2fprivate.txt",
        "..\\private.txt",
        "..%5cprivate.txt",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "//etc/passwd",
        "up",
        "abs",
        "other",
        "etc",
        "parent/private.txt",
        ".secret",
        "%2esecret",
        "nope.txt",
    ]
    for form in forms:
        for prefix in (f"/share/{sid}/", f"/share/raw/{sid}/"):
            assert await raw_status(alice, prefix + form) == 404, prefix + form
    # The same through a vanity URL.
    await alice.call("PUT", "/api/v2/account/username", {"username": f"a{uuid.uuid4().hex[:8]}"})
    status, body = await alice.call(
        "PUT", f"/api/v2/projects/{project_id}/url-name", {"name": "course"}
    )
    assert status == 200, body
    status, listing = await alice.call("GET", f"/api/v2/projects/{project_id}/public-paths")
    vanity = listing["public_paths"][0]["vanity_url"]
    assert (await alice.client.get(vanity + "/notes.md")).status == 200
    for form in forms:
        assert await raw_status(alice, f"{vanity}/{form}") == 404, form


async def test_a_published_file_reaches_only_itself(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    home = home_of(alice, project_id)
    write(home, "docs/one.md", "# One")
    write(home, "docs/two.md", "# Two")
    item = await publish(alice, project_id, path="docs/one.md", visibility="unlisted")
    reader = await make_user(same_hub_as=alice)
    assert ">One</h1>" in await (await reader.client.get(f"/share/{item['id']}")).text()
    assert (await reader.client.get(f"/share/{item['id']}/one.md")).status == 200
    assert (await reader.client.get(f"/share/{item['id']}/two.md")).status == 404
    assert (await reader.client.get(f"/share/raw/{item['id']}/one.md")).status == 200


async def test_visibility(make_user: Any, make_client: Any) -> None:
    alice, project_id, item = await setup_folder(make_user, visibility="unlisted")
    anonymous = await make_client(same_hub_as=alice.client)
    sid = item["id"]
    assert (await anonymous.get(f"/share/{sid}")).status == 200
    page = await anonymous.get(f"/share/{sid}")
    assert page.headers["X-Robots-Tag"].startswith("noindex")
    assert sid not in await (await anonymous.get("/share")).text()
    assert sid not in await (await anonymous.get("/share?q=course")).text()
    assert sid not in await (await anonymous.get("/sitemap.xml")).text()
    wrong = sid[:-2] + ("AA" if not sid.endswith("AA") else "BB")
    for url in (f"/share/{wrong}", f"/share/raw/{wrong}/data.bin", "/share/x", "/share/raw/x/y"):
        assert (await anonymous.get(url)).status == 404, url

    base = f"/api/v2/projects/{project_id}/public-paths/{sid}"
    await alice.call("PATCH", base, {"visibility": "signed-in"})
    resp = await anonymous.get(f"/share/{sid}/notes.md", allow_redirects=False)
    assert resp.status == 303
    location = URL(resp.headers["Location"])
    assert (location.path, location.query["next"]) == ("/sign-in", f"/share/{sid}/notes.md")
    assert (await anonymous.get(f"/share/raw/{sid}/data.bin", allow_redirects=False)).status == 303
    reader = await make_user(same_hub_as=alice)
    assert (await reader.client.get(f"/share/{sid}")).status == 200

    await alice.call("PATCH", base, {"visibility": "disabled"})
    assert (await reader.client.get(f"/share/{sid}")).status == 404
    assert (await anonymous.get(f"/share/raw/{sid}/data.bin")).status == 404
    assert (await alice.client.get(f"/share/{sid}")).status == 200  # a collaborator

    await alice.call("PATCH", base, {"visibility": "listed"})
    index = await (await anonymous.get("/share")).text()
    assert f"/share/{sid}" in index
    assert f"/share/{sid}" in await (await anonymous.get("/share?q=lecture")).text()
    assert f"/share/{sid}" not in await (await anonymous.get("/share?q=zzzz")).text()
    assert f"/share/{sid}" in await (await anonymous.get("/sitemap.xml")).text()


async def test_index_is_newest_first_and_paged(make_user: Any, make_client: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    home = home_of(alice, project_id)
    marker = uuid.uuid4().hex[:8]
    ids = []
    for n in range(35):
        write(home, f"f{n}.txt", "x")
        ids.append((await publish(alice, project_id, path=f"f{n}.txt", name=f"{marker}-{n}"))["id"])
    anonymous = await make_client(same_hub_as=alice.client)
    first = await (await anonymous.get(f"/share?q={marker}")).text()
    second = await (await anonymous.get(f"/share?q={marker}&page=2")).text()
    assert first.index(f"/share/{ids[34]}") < first.index(f"/share/{ids[33]}")
    assert f"/share/{ids[0]}" not in first and f"/share/{ids[0]}" in second
    assert 'rel="next"' in first and 'rel="next"' not in second


async def test_robots_and_sitemap(client: Any) -> None:
    robots = await client.get("/robots.txt")
    text = await robots.text()
    assert "Disallow: /share/raw/" in text and "Sitemap: " in text
    sitemap = await client.get("/sitemap.xml")
    assert sitemap.status == 200 and "<urlset" in await sitemap.text()


async def test_vanity_urls_and_old_names(make_user: Any, make_client: Any) -> None:
    alice, project_id, item = await setup_folder(make_user)
    name = f"al{uuid.uuid4().hex[:8]}"
    assert (await alice.call("PUT", "/api/v2/account/username", {"username": name}))[0] == 200
    assert (
        await alice.call("PUT", f"/api/v2/projects/{project_id}/url-name", {"name": "algebra"})
    )[0] == 200
    anonymous = await make_client(same_hub_as=alice.client)
    resp = await anonymous.get(f"/{name}/algebra/course/notes.md")
    assert resp.status == 200 and "math-inline" in await resp.text()
    # Rename both: the old URL redirects to the new one.
    new = name + "x"
    await alice.call("PUT", "/api/v2/account/username", {"username": new})
    await alice.call("PUT", f"/api/v2/projects/{project_id}/url-name", {"name": "linear"})
    resp = await anonymous.get(f"/{name}/algebra/course/notes.md", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == f"/{new}/linear/course/notes.md"
    # Unlisted items are not reachable by name.
    await alice.call(
        "PATCH",
        f"/api/v2/projects/{project_id}/public-paths/{item['id']}",
        {"visibility": "unlisted"},
    )
    assert (await anonymous.get(f"/{new}/linear/course")).status == 404
    # Names are validated, reserved and unique.
    bob = await make_user(same_hub_as=alice)
    for bad, status in (("share", 400), ("Bad Name", 400), (new, 409)):
        code, body = await bob.call("PUT", "/api/v2/account/username", {"username": bad})
        assert code == status, body
    code, _ = await bob.call("PUT", f"/api/v2/projects/{project_id}/url-name", {"name": "x"})
    assert code == 404  # not his project


async def test_view_counter(make_user: Any) -> None:
    alice, project_id, item = await setup_folder(make_user)
    reader = await make_user(same_hub_as=alice)
    for _ in range(3):
        assert (await reader.client.get(f"/share/{item['id']}/notes.md")).status == 200
    await alice.client.app[VIEWS].flush()
    _, listing = await alice.call("GET", f"/api/v2/projects/{project_id}/public-paths")
    assert listing["public_paths"][0]["views"] == 3


async def test_admin_switches(make_user: Any, make_client: Any) -> None:
    alice, _, item = await setup_folder(make_user)
    admin = await make_user(same_hub_as=alice)
    from cocalc_k8s.keys import ACCOUNTS

    await alice.client.app[ACCOUNTS].make_admin(admin.info["email"])
    assert (await alice.call("PATCH", "/api/v2/admin/share", {"enabled": False}))[0] == 403
    status, body = await admin.call("PATCH", "/api/v2/admin/share", {"enabled": False})
    assert (status, body) == (200, {"enabled": False})
    try:
        assert (await alice.client.get(f"/share/{item['id']}")).status == 404
        assert 'data-testid="share-disabled"' in await (await alice.client.get("/share")).text()
    finally:
        await admin.call("PATCH", "/api/v2/admin/share", {"enabled": True})
    assert (await alice.client.get(f"/share/{item['id']}")).status == 200
    assert (await admin.call("DELETE", f"/api/v2/admin/public-paths/{item['id']}"))[0] == 204
    assert (await alice.client.get(f"/share/{item['id']}")).status == 404


async def test_the_project_published_page(make_user: Any, make_client: Any) -> None:
    alice, project_id, item = await setup_folder(make_user)
    resp = await alice.client.get(f"/share/project/{project_id}")
    assert resp.status == 200
    html = await resp.text()
    assert f'<tr data-id="{item["id"]}">' in html and "Your username" in html
    mallory = await make_user(same_hub_as=alice)
    assert (await mallory.client.get(f"/share/project/{project_id}")).status == 404
    anonymous = await make_client(same_hub_as=alice.client)
    resp = await anonymous.get(f"/share/project/{project_id}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/sign-in?next=")


async def test_another_hub_sees_changes_at_once(
    make_user: Any, make_client: Any, monkeypatch: Any
) -> None:
    """Readers' lookups are cached per hub; NOTIFY drops them on every hub at once."""
    import cocalc_k8s.services.sharing as sharing

    monkeypatch.setattr(sharing, "CACHE_SECONDS", 3600.0)  # only NOTIFY can end an entry
    alice, project_id, item = await setup_folder(make_user)
    other_hub = await make_client()
    from cocalc_k8s.share.keys import SHARING

    await wait_until(lambda: other_hub.app[SHARING].caching)
    url = f"/share/{item['id']}/notes.md"
    assert (await other_hub.get(url)).status == 200  # now in the other hub's cache
    await alice.call(
        "PATCH",
        f"/api/v2/projects/{project_id}/public-paths/{item['id']}",
        {"visibility": "disabled"},
    )
    await wait_until_status(other_hub, url, 404)
    await alice.call(
        "PATCH",
        f"/api/v2/projects/{project_id}/public-paths/{item['id']}",
        {"visibility": "listed"},
    )
    await wait_until_status(other_hub, url, 200)
    assert (await alice.call("DELETE", f"/api/v2/projects/{project_id}"))[0] == 204
    await wait_until_status(other_hub, url, 404)  # the project was deleted


async def wait_until(condition: Any, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def wait_until_status(client: Any, url: str, status: int, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (await client.get(url)).status != status:
        assert loop.time() < deadline, f"{url} never answered {status}"
        await asyncio.sleep(0.05)


async def test_the_hubs_own_urls_are_not_vanity_urls(client: Any) -> None:
    """Reserved first segments never reach the vanity handler: an unknown API path stays a
    404 for every method (a catch-all GET route would make other methods a 405)."""
    for method in ("GET", "POST", "DELETE"):
        resp = await client.request(method, "/api/v2/no/such-thing")
        assert resp.status in (401, 403, 404), (method, resp.status)
        assert resp.status != 405
    assert (await client.get("/someone/some-project/some-item")).status == 404


async def test_a_published_folder_as_a_zip(make_user: Any, make_client: Any) -> None:
    import io
    import zipfile

    alice, project_id, item = await setup_folder(make_user, visibility="unlisted")
    home = home_of(alice, project_id)
    write(home, "pub/img/.hidden/key", "secret")
    os.symlink("../private.txt", home / "pub/up")
    os.symlink("/etc", home / "pub/etc")
    sid = item["id"]
    anonymous = await make_client(same_hub_as=alice.client)
    page = await (await anonymous.get(f"/share/{sid}")).text()
    assert f'href="/share/zip/{sid}"' in page
    resp = await anonymous.get(f"/share/zip/{sid}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/zip"
    assert 'filename="course.zip"' in resp.headers["Content-Disposition"]
    assert resp.headers["X-Robots-Tag"].startswith("noindex")
    names = zipfile.ZipFile(io.BytesIO(await resp.read())).namelist()
    assert "README.md" in names and "img/p.png" in names and "code.py" in names
    assert not [n for n in names if "secret" in n or "hidden" in n or n.startswith(".")]
    assert not [n for n in names if n.startswith(("up", "etc"))]  # symlinks left out
    sub = await anonymous.get(f"/share/zip/{sid}/img")
    assert zipfile.ZipFile(io.BytesIO(await sub.read())).namelist() == ["p.png"]
    folder_page = await (await anonymous.get(f"/share/{sid}/img/")).text()
    assert f'href="/share/zip/{sid}/img"' in folder_page
    # Nothing outside the item, nothing that is not a folder, nothing for strangers.
    for form in ("..", "%2e%2e", "img/../..", "up", "etc", ".secret", "img/.hidden", "code.py"):
        assert await raw_status(alice, f"/share/zip/{sid}/{form}") == 404, form
    file_item = await publish(alice, project_id, path="private.txt", visibility="unlisted")
    assert (await anonymous.get(f"/share/zip/{file_item['id']}")).status == 404
    await alice.call(
        "PATCH", f"/api/v2/projects/{project_id}/public-paths/{sid}", {"visibility": "disabled"}
    )
    assert (await anonymous.get(f"/share/zip/{sid}")).status == 404
