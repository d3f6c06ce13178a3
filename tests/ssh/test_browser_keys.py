"""The account page and the project's Settings tab manage SSH keys (a real Chromium), and a
key pasted there logs in with the real ssh client."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.keys import SSH_HOST
from tests.ssh.conftest import SshUser, make_key
from tests.test_browser import Console, new_page
from tests.test_projects_api import User, new_project

with contextlib.suppress(ImportError):  # without playwright the browser fixture skips
    from playwright.async_api import Browser, expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


async def test_keys_on_the_account_page_and_in_project_settings(
    browser: Browser, hub: Any, tmp_path: Path, make_client: Any
) -> None:
    base = str(hub.make_url("/")).rstrip("/")
    console = Console()
    page = await new_page(browser, console)
    response = await page.request.post(
        f"{base}/api/v2/auth/sign-up",
        data={"email": "ssh-browser@example.org", "password": "correct horse", "name": "Ada"},
    )
    assert response.status == 201
    body = await response.json()
    key = make_key(tmp_path, "id_browser")
    await page.goto(f"{base}/account")
    fingerprint = hub.app[SSH_HOST].fingerprint
    await expect(page.get_by_test_id("ssh-host-key")).to_have_text(fingerprint)
    await page.get_by_label("Name of the SSH key").fill("laptop")
    await page.get_by_label("Public key").fill("ssh-dss AAAA nope")
    await page.get_by_role("button", name="Add SSH key").click()
    await expect(page.get_by_role("alert")).to_contain_text("must start with")
    await expect(page.get_by_label("Name of the SSH key")).to_have_value("laptop")  # kept
    await page.get_by_label("Public key").fill(key.with_suffix(".pub").read_text())
    await page.get_by_role("button", name="Add SSH key").click()
    await expect(page.get_by_test_id("message")).to_have_text("The SSH key was added.")
    row = page.get_by_test_id("ssh-keys").get_by_role("row", name=re.compile("laptop"))
    await expect(row).to_contain_text("SHA256:")

    # The key logs in; a project's own key is managed in its Settings tab.
    client = await make_client(same_hub_as=hub)  # signed in as the page's account
    for cookie in await page.context.cookies():
        client.session.cookie_jar.update_cookies({cookie["name"]: cookie["value"]})
    await use_keys(page, client, body, key, base, hub)
    # The one refused form (the DSA key) answered 400, as it must; nothing else went wrong.
    assert [e for e in console.errors if "status of 400" not in e] == []
    assert len(console.errors) == 1


async def use_keys(page: Any, client: Any, body: Any, key: Path, base: str, hub: Any) -> None:
    user = User(client, {**body, "email": "ssh-browser@example.org"})
    project = await new_project(user, "With SSH")
    ssh_user = SshUser(user, key, hub.app[SSH_HOST].port)
    row = page.get_by_test_id("ssh-keys").get_by_role("row", name=re.compile("laptop"))
    result = await ssh_user.ssh(project[:8], "echo $((6*7))")
    assert (result.code, result.stdout) == (0, b"42\n"), result.stderr
    await row.get_by_role("button", name="Delete").click()
    await expect(page.get_by_text("No SSH keys yet.")).to_be_visible()
    assert (await ssh_user.ssh(project, "true")).code == 255

    await page.goto(f"{base}/projects/{project}/settings")
    await expect(page.get_by_test_id("ssh-login")).to_contain_text(f"ssh {project[:8]}@")
    await page.get_by_label("Name of the SSH key").fill("backup job")
    await page.get_by_label("Public key").fill(key.with_suffix(".pub").read_text())
    await page.get_by_role("button", name="Add SSH key to this project").click()
    keys = page.get_by_test_id("project-ssh-keys")
    await expect(keys).to_contain_text("backup job")
    await expect(keys).to_contain_text("added by Ada")
    login = await ssh_user.ssh(project, "true")
    assert login.code == 0, login.stderr
    await keys.get_by_role("button", name="Delete SSH key backup job").click()
    await expect(keys).to_contain_text("No project keys yet.")
    assert (await ssh_user.ssh(project, "true")).code == 255
