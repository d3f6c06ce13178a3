"""Jupyter's users are the hub's accounts: identities the hub signs
(`cocalc_k8s.core.jupyter_identity`) are verified by the project environment's
`cocalc_jupyter.identity`, pure and in a real Jupyter server started with it, which refuses
forged, expired, other projects' and token-less requests."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cocalc_k8s.agent.named_servers import command, environment
from cocalc_k8s.core.jupyter_identity import (
    COLORS,
    color_of,
    public_key_text,
    sign_identity,
    signing_key,
)

identity = pytest.importorskip("cocalc_jupyter.identity")
pytestmark = pytest.mark.timeout(120)

SECRET = b"s" * 32
PROJECT = uuid.UUID("11111111-2222-3333-4444-555555555555")
ACCOUNT = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
KEY = signing_key(SECRET)
PUBLIC = identity.load_public_key(public_key_text(KEY))


def signed(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "project_id": PROJECT,
        "account_id": ACCOUNT,
        "name": "Ada Lovelace",
        "now": time.time(),
    }
    args.update(overrides)
    key = args.pop("key", KEY)
    return sign_identity(key, **args)


def check(token: str, *, project: uuid.UUID = PROJECT, now: float | None = None) -> Any:
    when = time.time() if now is None else now
    return identity.verify(token, public_key=PUBLIC, project_id=str(project), now=when)


def test_a_hub_identity_names_the_account_with_its_colour() -> None:
    who = check(signed())
    assert who == identity.Identity(str(ACCOUNT), "Ada Lovelace", color_of(ACCOUNT))
    assert color_of(ACCOUNT) in COLORS
    assert identity.initials("Ada Lovelace") == "AL"


def test_the_colour_is_the_one_of_the_pages() -> None:
    # static/people.js: hash = (hash * 31 + charCode) >>> 0 over the id; COLORS[hash % 8]
    text = str(ACCOUNT)
    hash_ = 0
    for ch in text:
        hash_ = (hash_ * 31 + ord(ch)) % 2**32
    assert color_of(ACCOUNT) == COLORS[hash_ % len(COLORS)]


def test_forged_expired_and_foreign_identities_are_refused() -> None:
    now = time.time()
    other_key = signing_key(b"another hub's secret key........")
    payload, _, signature = signed().partition(".")
    assert check(signed(key=other_key)) is None  # not signed by this hub
    assert check(signed(name="Mallory")[:-4] + "AAAA") is None  # signature broken
    forged_payload = signed(name="Mallory").split(".")[0]
    assert check(f"{forged_payload}.{signature}") is None  # another payload, old signature
    assert check(signed(now=now - 600)) is None  # expired
    assert check(signed(), now=now + 400) is None  # expired by now
    assert check(signed(lifetime=86400)) is None  # no identity lives that long
    assert check(signed(), project=uuid.uuid4()) is None  # signed for another project
    for garbage in ("", "x", "a.b.c", "!!!.???", payload):
        assert check(garbage) is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real Jupyter server run as the agent runs it, with the hub's public key: (URL, token)."""
    port = free_port()
    token = "t" * 32
    try:
        argv = command("jupyterlab", host="127.0.0.1", port=port, base_url="/j/", identity=True)
    except Exception as exc:  # JupyterLab not installed here
        pytest.skip(str(exc))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        **environment(
            "jupyterlab", token, identity_key=public_key_text(KEY), project_id=str(PROJECT)
        ),
    }
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "jupyter.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Jupyter did not listen"
                time.sleep(0.1)  # polling a port with a deadline
        yield f"http://127.0.0.1:{port}/j", token
    finally:
        process.terminate()
        process.wait(20)
        log.close()


async def test_jupyter_trusts_only_the_hubs_identity_with_its_token(
    jupyter: tuple[str, str],
) -> None:
    url, token = jupyter
    other_key = signing_key(b"another hub's secret key........")

    async def me(headers: dict[str, str]) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/api/me", headers=headers, allow_redirects=False) as resp,
        ):
            return resp.status, await resp.json() if resp.status == 200 else None

    auth = {"Authorization": f"token {token}"}
    status, body = await me({**auth, "X-CoCalc-Identity": signed()})
    assert status == 200, body
    assert body["identity"]["username"] == str(ACCOUNT)
    assert body["identity"]["display_name"] == "Ada Lovelace"
    assert body["identity"]["color"] == color_of(ACCOUNT)
    refused = [
        {**auth},  # the token alone (what a process of the project can read) is no one
        {**auth, "X-CoCalc-Identity": signed(key=other_key)},  # forged
        {**auth, "X-CoCalc-Identity": signed(now=time.time() - 3600)},  # expired
        {**auth, "X-CoCalc-Identity": signed(project_id=uuid.uuid4())},  # another project
        {"X-CoCalc-Identity": signed()},  # no token: not through the proxy
        {"Authorization": "token wrong", "X-CoCalc-Identity": signed()},
    ]
    statuses = await asyncio.gather(*(me(headers) for headers in refused))
    assert [status for status, _ in statuses] == [403] * len(refused)
