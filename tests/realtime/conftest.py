"""Fixtures of the realtime tests: hubs with accounts, projects and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import sign_up, unique_email
from tests.realtime.client import DocClient
from tests.test_projects_api import User, new_project


@dataclass
class Member:
    user: User
    key: str
    url: str

    def client(self, url: str | None = None, *, encoding: str = "default") -> DocClient:
        return DocClient(url or self.url, key=self.key, encoding=encoding)


async def member(client: Any, email: str | None = None) -> Member:
    user = User(client, await sign_up(client, email=email))
    status, body = await user.call("POST", "/api/v2/api-keys", {"name": "realtime"})
    assert status == 201, body
    return Member(user, str(body["key"]), str(client.make_url("")).rstrip("/"))


@pytest.fixture
async def team(make_client: Any) -> Any:
    """`team(n)`: n accounts on one hub, all in one project (the first owns it, and is an
    admin with `admin=True`)."""

    async def make(n: int = 2, *, admin: bool = False, **settings: Any) -> tuple[str, list[Member]]:
        email = unique_email("admin") if admin else None
        hub = await make_client(**({"admin_email": email} if admin else {}), **settings)
        members = [await member(hub, email)]
        for _ in range(n - 1):
            members.append(await member(await make_client(same_hub_as=hub)))
        project_id = await new_project(members[0].user)
        for m in members[1:]:
            status, _ = await members[0].user.call(
                "POST",
                f"/api/v2/projects/{project_id}/collaborators",
                {"email": m.user.info["email"]},
            )
            assert status == 201
        return project_id, members

    return make
