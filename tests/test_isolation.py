"""Where projects cannot be sandboxed: the verdict (pure), the real probes, and a hub
that finds no bubblewrap (none on its PATH): one account only, unless the admin passes
`--trusted-users`; an interpreter projects cannot execute fails every start with one clear
reason."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.backends.host_checks import NOBODY, interpreter_problem
from cocalc_k8s.backends.sandbox import sandbox_available
from cocalc_k8s.core.isolation import Isolation, decide_isolation, sign_up_lock
from cocalc_k8s.core.settings import (
    SYSTEM_DATA_DIR,
    data_dir_notice,
    pick_data_dir,
    user_data_dir,
)
from cocalc_k8s.db.embedded import EmbeddedPostgres
from tests.conftest import _create_database, _drop_database, sign_up, unique_email
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

SITE = "/api/v2/admin/site-settings"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="projects get uids of their own as root")


def private_python(tmp_path: Path) -> Path:
    """The hub's interpreter, reached through a directory only root can search (like a
    pyenv under /root)."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "python").symlink_to(os.path.realpath(sys.executable))
    return private / "python"


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without bubblewrap, as far as the hub can tell: nothing on its PATH."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def database_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A database of each test's own: "the first account" is the first of this test."""
    name = _create_database(postgres)
    yield postgres.admin_url(name)
    _drop_database(postgres, name)


def test_decision() -> None:
    local = decide_isolation(backend="local", sandbox_problem=None, trusted_users=False)
    assert local.sandboxed and not local.single_account
    assert "bubblewrap sandbox of its own" in local.summary()
    k8s = decide_isolation(backend="kubernetes", sandbox_problem="no bwrap", trusted_users=False)
    assert k8s.sandboxed and k8s.problem is None
    assert "pod of its own" in k8s.summary()
    lone = decide_isolation(backend="local", sandbox_problem="no bwrap", trusted_users=False)
    assert lone.single_account and lone.problem == "no bwrap"
    assert "unprivileged_userns_clone=1" in lone.summary()
    trusted = decide_isolation(backend="local", sandbox_problem="no bwrap", trusted_users=True)
    assert not trusted.sandboxed and not trusted.single_account
    assert "--trusted-users" in trusted.summary() and "no bwrap" in trusted.summary()


def test_sign_up_lock() -> None:
    lone = Isolation(sandboxed=False, trusted_users=False, problem="no bwrap")
    assert sign_up_lock(lone, accounts=0) is None  # the first account may sign up
    locked = sign_up_lock(lone, accounts=1)
    assert locked is not None and "cannot be sandboxed" in locked
    assert "no bwrap" not in locked  # shown to strangers: no detail of the machine
    assert sign_up_lock(Isolation(sandboxed=True, trusted_users=False), accounts=5) is None
    trusted = Isolation(sandboxed=False, trusted_users=True, problem="no bwrap")
    assert sign_up_lock(trusted, accounts=5) is None


def test_data_dir_as_root(tmp_path: Path) -> None:
    old = tmp_path / "share" / "cocalc-k8s"
    assert pick_data_dir(is_root=True, user_dir=old) == SYSTEM_DATA_DIR
    assert pick_data_dir(is_root=False, user_dir=old) == old
    old.mkdir(parents=True)  # a data directory from an earlier release stays in use
    assert pick_data_dir(is_root=True, user_dir=old) == old
    notice = data_dir_notice(user_data_dir().absolute(), is_root=True)
    assert notice is not None and str(SYSTEM_DATA_DIR) in notice
    assert data_dir_notice(user_data_dir().absolute(), is_root=False) is None
    assert data_dir_notice(SYSTEM_DATA_DIR, is_root=True) is None


async def test_probes_run_the_real_programs(tmp_path: Path) -> None:
    if shutil.which("bwrap"):
        assert sandbox_available() is None
        assert await interpreter_problem(sys.executable, uid=None, sandboxed=True) is None
    assert await interpreter_problem(sys.executable, uid=None) is None
    missing = await interpreter_problem(str(tmp_path / "nothing"), uid=None, sandboxed=True)
    if shutil.which("bwrap"):
        assert missing is not None and "No such file" in missing


@as_root
async def test_a_private_interpreter_is_found(tmp_path: Path) -> None:
    private = private_python(tmp_path)
    problem = await interpreter_problem(str(private), uid=NOBODY)
    assert problem is not None and "Permission denied" in problem
    assert "chmod o+x" in problem


@pytest.mark.usefixtures("no_bwrap")
async def test_without_a_sandbox_one_account_only(make_client: Any) -> None:
    client = await make_client(first_account_admin=True)
    admin = User(client, await sign_up(client))
    other = await make_client(same_hub_as=client)
    resp = await other.post(
        "/api/v2/auth/sign-up",
        json={"email": unique_email(), "password": "correct horse", "name": "Second"},
    )
    body = await resp.json()
    assert resp.status == 403
    assert "cannot be sandboxed" in body["error"] and "one account only" in body["error"]
    status, site = await admin.call("GET", SITE)
    assert status == 200 and site["sign_up"] == "closed"
    assert "one account only" in site["sign_up_locked"]
    assert site["isolation"]["sandboxed"] is False
    assert "not installed" in site["isolation"]["problem"]
    assert "unprivileged_userns_clone=1" in site["isolation"]["summary"]
    status, body = await admin.call("PATCH", SITE, {"sign_up": "open"})
    assert status == 409 and "cannot be sandboxed" in body["error"]
    page = await (await client.get("/admin")).text()
    assert 'data-testid="sign-up-locked"' in page and "serves one account only" in page
    assert "not installed" in page and "--trusted-users" in page
    form = await (await other.get("/sign-up")).text()
    assert 'data-testid="sign-up-closed"' in form


@pytest.mark.usefixtures("no_bwrap")
async def test_trusted_users_keep_sign_up(make_client: Any) -> None:
    client = await make_client(trusted_users=True, first_account_admin=True)
    admin = User(client, await sign_up(client))
    await sign_up(await make_client(same_hub_as=client))
    status, site = await admin.call("GET", SITE)
    assert status == 200, site
    assert site["sign_up"] == "open" and site["sign_up_locked"] is None
    assert site["isolation"]["trusted_users"] is True
    page = await (await client.get("/admin")).text()
    assert "run without a sandbox" in page and "--trusted-users" in page


@as_root
@pytest.mark.timeout(60)
async def test_an_interpreter_projects_cannot_run_fails_every_start_clearly(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Unsandboxed, as root: on a machine whose Python lives under a private directory
    (this kind: a pyenv under /root, mode 0700) no project can run the hub's interpreter."""
    if await interpreter_problem(sys.executable, uid=NOBODY) is None:
        pytest.skip("projects can execute this interpreter here")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", str(tmp_path))  # no bubblewrap: projects would run unsandboxed
        with caplog.at_level(logging.ERROR, logger="cocalc_k8s.app"):
            client = await make_client(trusted_users=True)
    said = [r.getMessage() for r in caplog.records if "no project can start" in r.getMessage()]
    assert len(said) == 1 and "Permission denied" in said[0]
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    status, _ = await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    assert status == 202
    project = await wait_state(owner, project_id, "failed")
    assert "projects cannot execute" in project["error"] and "chmod o+x" in project["error"]
