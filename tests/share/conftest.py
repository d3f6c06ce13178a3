"""Fixtures of the share tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import sign_up
from tests.test_projects_api import User


@pytest.fixture
async def make_user(make_client: Any) -> Any:
    """A signed-in user on a new hub, or with `same_hub_as=user` on that user's hub."""

    async def make(*, same_hub_as: User | None = None, **settings: Any) -> User:
        if same_hub_as is not None:
            client = await make_client(same_hub_as=same_hub_as.client)
        else:
            client = await make_client(**settings)
        return User(client, await sign_up(client))

    return make
