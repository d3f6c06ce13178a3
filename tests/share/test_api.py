"""The publishing API: the contract of issue 17 (paths, fields, status codes), who may
call it, and clear 400s for bad input."""

from __future__ import annotations

from typing import Any

from tests.share.helpers import home_of, publish, write
from tests.test_projects_api import new_project


async def test_publish_list_edit_unpublish(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    write(home_of(alice, project_id), "notes/intro.md", "# Intro")
    base = f"/api/v2/projects/{project_id}/public-paths"
    status, body = await alice.call(
        "POST",
        base,
        {
            "path": "notes",
            "name": "course-notes",
            "description": "Lecture *notes*",
            "license": "CC-BY-4.0",
            "visibility": "listed",
        },
    )
    assert status == 201, body
    assert set(body) >= {"id", "url"}
    assert body["url"] == f"/share/{body['id']}"
    assert len(body["id"]) >= 22  # 144 random bits, URL-safe
    share_id = body["id"]

    status, listing = await alice.call("GET", base)
    assert status == 200
    [item] = listing["public_paths"]
    assert (item["id"], item["path"], item["name"], item["license"], item["visibility"]) == (
        share_id,
        "notes",
        "course-notes",
        "CC-BY-4.0",
        "listed",
    )

    status, edited = await alice.call(
        "PATCH", f"{base}/{share_id}", {"visibility": "unlisted", "description": "new"}
    )
    assert status == 200, edited
    assert (edited["visibility"], edited["description"]) == ("unlisted", "new")

    status, _ = await alice.call("DELETE", f"{base}/{share_id}")
    assert status == 204
    status, listing = await alice.call("GET", base)
    assert listing["public_paths"] == []
    status, body = await alice.call("DELETE", f"{base}/{share_id}")
    assert status == 404


async def test_ids_are_random_and_distinct(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    home = home_of(alice, project_id)
    ids = set()
    for n in range(5):
        write(home, f"f{n}.txt", "x")
        ids.add((await publish(alice, project_id, path=f"f{n}.txt"))["id"])
    assert len(ids) == 5


async def test_validation_errors_are_400_with_a_message(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    write(home_of(alice, project_id), "a.txt", "x")
    base = f"/api/v2/projects/{project_id}/public-paths"
    cases = [
        ({}, "path is required"),
        ({"path": "a.txt", "visibility": "public"}, "visibility must be one of"),
        ({"path": "a.txt", "license": "WTFPL"}, "license must be one of"),
        ({"path": "a.txt", "name": "Has Spaces"}, "name may contain only"),
        ({"path": "../other", "visibility": "listed"}, "must not contain '..'"),
        ({"path": "missing.txt"}, "no such file or directory"),
        ({"path": "a.txt", "description": 5}, "description must be a string"),
        ({"path": "a.txt", "colour": "red"}, "unknown field 'colour'"),
        ({"path": 7}, "path must be"),
    ]
    for body, message in cases:
        status, answer = await alice.call("POST", base, body)
        assert status == 400, (body, answer)
        assert message in answer["error"], (body, answer)
    status, answer = await alice.call("PATCH", f"{base}/nope", {})
    assert status == 400


async def test_duplicates_conflict(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    home = home_of(alice, project_id)
    write(home, "a.txt", "x")
    write(home, "b.txt", "x")
    await publish(alice, project_id, path="a.txt", name="same")
    base = f"/api/v2/projects/{project_id}/public-paths"
    status, answer = await alice.call("POST", base, {"path": "a.txt", "name": "other"})
    assert status == 409 and "already published" in answer["error"]
    status, answer = await alice.call("POST", base, {"path": "b.txt", "name": "same"})
    assert status == 409 and "has that name" in answer["error"]


async def test_only_collaborators(make_user: Any, make_client: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    write(home_of(alice, project_id), "a.txt", "x")
    item = await publish(alice, project_id, path="a.txt")
    mallory = await make_user(same_hub_as=alice)
    base = f"/api/v2/projects/{project_id}/public-paths"
    assert (await mallory.call("GET", base))[0] == 404
    assert (await mallory.call("POST", base, {"path": "a.txt"}))[0] == 404
    assert (await mallory.call("PATCH", f"{base}/{item['id']}", {"name": "x"}))[0] == 404
    assert (await mallory.call("DELETE", f"{base}/{item['id']}"))[0] == 404
    anonymous = await make_client(same_hub_as=alice.client)
    assert (await anonymous.get(base)).status == 401
    # Another project's id with this item's id: not found, not edited.
    their_project = await new_project(mallory)
    status, _ = await mallory.call(
        "PATCH", f"/api/v2/projects/{their_project}/public-paths/{item['id']}", {"name": "x"}
    )
    assert status == 404
    status, listing = await alice.call("GET", base)
    assert [i["name"] for i in listing["public_paths"]] == ["a.txt"]


async def test_collaborator_publishes(make_user: Any, make_client: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    write(home_of(alice, project_id), "a.txt", "x")
    bob = await make_user(same_hub_as=alice)
    status, _ = await alice.call(
        "POST", f"/api/v2/projects/{project_id}/collaborators", {"email": bob.info["email"]}
    )
    assert status == 201
    item = await publish(bob, project_id, path="a.txt", visibility="unlisted")
    status, listing = await alice.call("GET", f"/api/v2/projects/{project_id}/public-paths")
    assert [i["id"] for i in listing["public_paths"]] == [item["id"]]
