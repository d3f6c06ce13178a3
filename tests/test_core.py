"""Pure logic: validation, tokens, the failure window and the principal cache."""

from __future__ import annotations

import uuid

import pytest

from cocalc_k8s.core import validation
from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.identity import Principal
from cocalc_k8s.core.ratelimit import FailureWindow
from cocalc_k8s.core.tokens import csrf_token, new_api_key, new_token, token_hash
from cocalc_k8s.services.principal_cache import PrincipalCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(account_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        account_id=account_id or uuid.uuid4(),
        email="a@example.org",
        name="A",
        is_admin=False,
        via="session",
        credential="t",
    )


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (" Alice@Example.ORG ", "alice@example.org"),
        ("a.b+c@sub.example.co", "a.b+c@sub.example.co"),
    ],
)
def test_email_is_normalised(raw: str, clean: str) -> None:
    assert validation.email(raw) == clean


@pytest.mark.parametrize("raw", ["", "no-at", "a@b", "a@@b.org", "a b@c.org", None, 5, "a@b."])
def test_bad_emails(raw: object) -> None:
    with pytest.raises(BadRequest):
        validation.email(raw)


def test_password_bounds() -> None:
    assert validation.password("12345678") == "12345678"
    with pytest.raises(BadRequest, match="at least 8"):
        validation.password("1234567")
    with pytest.raises(BadRequest, match="at most"):
        validation.password("x" * 257)


def test_name_collapses_whitespace_and_refuses_control_characters() -> None:
    assert validation.name("  Ada   Lovelace ") == "Ada Lovelace"
    with pytest.raises(BadRequest):
        validation.name("bell\x07")
    with pytest.raises(BadRequest):
        validation.name("   ")


def test_tokens_are_random_and_hashes_fixed_size() -> None:
    assert new_token() != new_token()
    assert len(token_hash(new_token())) == 32
    key, prefix = new_api_key()
    assert key.startswith(prefix) and prefix.startswith("ck_") and len(prefix) == 11
    assert csrf_token(b"k", "a") != csrf_token(b"k", "b")
    assert csrf_token(b"k", "a") != csrf_token(b"other", "a")


def test_failure_window_limits_and_slides() -> None:
    clock = Clock()
    window = FailureWindow(limit=2, window=60, clock=clock)
    assert window.retry_after("k") == 0
    window.fail("k")
    window.fail("k")
    assert window.retry_after("k") == 60
    assert window.retry_after("other") == 0
    clock.now += 59
    assert window.retry_after("k") == 1
    clock.now += 1
    assert window.retry_after("k") == 0
    window.fail("k")
    window.reset("k")
    assert window.retry_after("k") == 0


def test_principal_cache_expires_and_drops_by_account() -> None:
    clock = Clock()
    cache = PrincipalCache(ttl=5, clock=clock)
    p = principal()
    cache.put(b"a", p, cache.ticket())
    assert cache.get(b"a") is None  # disabled until the listener runs
    cache.enable()
    cache.put(b"a", p, cache.ticket())
    cache.put(b"b", principal(p.account_id), cache.ticket())
    cache.put(b"c", principal(), cache.ticket())
    assert cache.get(b"a") is p
    cache.drop_account_id(str(p.account_id))
    assert cache.get(b"a") is None and cache.get(b"b") is None
    assert cache.get(b"c") is not None
    clock.now += 5
    assert cache.get(b"c") is None
    cache.put(b"d", p, cache.ticket())
    cache.disable()
    assert cache.get(b"d") is None


def test_principal_cache_keeps_no_answer_loaded_before_a_drop() -> None:
    cache = PrincipalCache(ttl=5, clock=Clock())
    cache.enable()
    p = principal()
    ticket = cache.ticket()  # a lookup starts reading the database...
    cache.drop_account(p.account_id)  # ...a sign-out or ban arrives meanwhile...
    cache.put(b"a", p, ticket)  # ...and its answer, read before, is not kept
    assert cache.get(b"a") is None
    cache.put(b"a", p, cache.ticket())
    assert cache.get(b"a") is p


async def test_cancel_ends_a_task_and_accepts_none() -> None:
    import asyncio

    from cocalc_k8s.core.tasks import cancel

    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(forever())
    await started.wait()
    await cancel(task)
    assert task.cancelled()
    await cancel(None)
