"""The SSH key API: validation of pasted keys (pure), an account's keys, a project's keys
(any collaborator), and who may see or delete what."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
import pytest

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.ssh_public_keys import parse_public_key
from tests.conftest import sign_up
from tests.test_projects_api import User, new_project


def public(algorithm: str, **kwargs: Any) -> str:
    key = asyncssh.generate_private_key(algorithm, comment="me@laptop", **kwargs)
    return key.export_public_key().decode()


@pytest.mark.parametrize(
    "algorithm, kwargs",
    [
        ("ssh-ed25519", {}),
        ("ecdsa-sha2-nistp256", {}),
        ("ecdsa-sha2-nistp521", {}),
        ("ssh-rsa", {"key_size": 2048}),
    ],
)
def test_accepted_keys_and_their_fingerprint(
    algorithm: str, kwargs: dict[str, Any], tmp_path: Path
) -> None:
    text = public(algorithm, **kwargs)
    key = parse_public_key("  " + text + "  ")
    assert key.algorithm == algorithm and key.comment == "me@laptop"
    (tmp_path / "k.pub").write_text(text)
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True
    )
    if printed.returncode == 0:  # ssh-keygen comes with openssh-client
        assert printed.stdout.split()[1] == key.fingerprint


@pytest.mark.parametrize(
    "text, words",
    [
        (None, "required"),
        ("", "required"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "must start with"),
        ("garbage", "must start with"),
        ("ssh-ed25519", "no key data"),
        ("ssh-ed25519 AAAA!!!!", "not a valid"),
        ('command="rm -rf ~" ssh-ed25519 AAAAC3Nza', "must start with"),
        ("ssh-ed25519 AAAA\nssh-ed25519 BBBB", "one line"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "must start with"),
    ],
)
def test_refused_keys_say_why(text: Any, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        parse_public_key(text)


def test_short_rsa_and_mismatched_data_are_refused() -> None:
    with pytest.raises(BadRequest, match="at least 2048 bits"):
        parse_public_key(public("ssh-rsa", key_size=1024))
    ed25519 = public("ssh-ed25519").split()[1]
    with pytest.raises(BadRequest, match=r"not a valid|does not match"):
        parse_public_key(f"ssh-rsa {ed25519}")
    with pytest.raises(BadRequest, match="not a valid"):
        parse_public_key("ssh-ed25519 " + base64.b64encode(b"\0\0\0\x0bssh-ed25519").decode())


async def test_account_and_project_keys(make_client: Any) -> None:
    client = await make_client()
    alice = User(client, await sign_up(client))
    bob_client = await make_client(same_hub_as=client)
    bob = User(bob_client, await sign_up(bob_client))
    key = public("ssh-ed25519")
    status, created = await alice.call(
        "POST", "/api/v2/ssh-keys", {"name": "laptop", "public_key": key}
    )
    assert status == 201, created
    assert created["fingerprint"] == parse_public_key(key).fingerprint
    assert created["public_key"] == " ".join(key.split()[:2])  # the comment is not kept
    status, body = await alice.call(
        "POST", "/api/v2/ssh-keys", {"name": "again", "public_key": key}
    )
    assert status == 409 and "already" in body["error"]
    status, body = await alice.call("POST", "/api/v2/ssh-keys", {"name": "x", "public_key": "no"})
    assert status == 400 and "error" in body
    status, listed = await alice.call("GET", "/api/v2/ssh-keys")
    assert [k["id"] for k in listed["ssh_keys"]] == [created["id"]]
    assert listed["ssh"] == {"port": None, "host_key_fingerprint": None, "host": "127.0.0.1"}
    # Bob sees none of it and cannot delete it.
    assert (await bob.call("GET", "/api/v2/ssh-keys"))[1]["ssh_keys"] == []
    assert (await bob.call("DELETE", f"/api/v2/ssh-keys/{created['id']}"))[0] == 404
    assert (await bob.call("DELETE", "/api/v2/ssh-keys/not-a-uuid"))[0] == 404
    url = client.make_url("/api/v2/ssh-keys")
    async with aiohttp.ClientSession() as nobody, nobody.get(url) as anonymous:
        assert anonymous.status == 401
    # A project's keys: any collaborator adds, lists and deletes them; others get 404.
    project = await new_project(alice)
    path = f"/api/v2/projects/{project}/ssh-keys"
    assert (await bob.call("GET", path))[0] == 404
    assert (await bob.call("POST", path, {"name": "ci", "public_key": key}))[0] == 404
    await alice.call(
        "POST", f"/api/v2/projects/{project}/collaborators", {"email": bob.info["email"]}
    )
    status, project_key = await bob.call("POST", path, {"name": "ci", "public_key": key})
    assert status == 201, project_key
    status, listed = await alice.call("GET", path)
    assert [(k["name"], k["added_by"]["id"]) for k in listed["ssh_keys"]] == [
        ("ci", bob.account_id)
    ]
    assert (await alice.call("DELETE", f"/api/v2/ssh-keys/{project_key['id']}"))[0] == 404
    assert (await alice.call("DELETE", f"{path}/{project_key['id']}"))[0] == 204
    assert (await alice.call("GET", path))[1]["ssh_keys"] == []
    # The account key is still there: the two kinds never mix.
    assert len((await alice.call("GET", "/api/v2/ssh-keys"))[1]["ssh_keys"]) == 1
    assert (await alice.call("DELETE", f"/api/v2/ssh-keys/{created['id']}"))[0] == 204
