"""Per-project disk quotas by accounting (services.disk_quota): hub-side writes refused
over the quota (413 when a write does not fit, 507 at or over it), running projects over
it stopped with the reason in the project log, no start while over it, and the data
volume's reserve (--disk-reserve-mb). Real hub, real database, real agents."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cocalc_k8s.keys import DISK_QUOTA, SETTINGS
from cocalc_k8s.services.disk_quota import mount_of
from tests.conftest import sign_up
from tests.test_admin_api import new_admin
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(90)
MIB = 1024 * 1024
QUOTA_MB = 10  # the smallest disk quota an admin can set

MOUNTINFO = """\
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
30 22 253:1 / /srv rw,relatime shared:2 - xfs /dev/vdb rw,attr2,inode64,prjquota
31 30 0:40 / /srv/tmp rw shared:3 - tmpfs tmpfs rw,size=1024k
"""


def test_the_mount_holding_a_path() -> None:
    assert mount_of(MOUNTINFO, "/var/lib/cocalc-k8s") == ("ext4", "/", False)
    assert mount_of(MOUNTINFO, "/srv/cocalc") == ("xfs", "/srv", True)
    assert mount_of(MOUNTINFO, "/srv") == ("xfs", "/srv", True)
    assert mount_of(MOUNTINFO, "/srv/tmp/x") == ("tmpfs", "/srv/tmp", False)
    assert mount_of(MOUNTINFO, "/srvx") == ("ext4", "/", False)
    assert mount_of("", "/") == ("", "", False)


@pytest.fixture
async def owner(make_client: Any) -> User:
    client = await make_client()
    return User(client, await sign_up(client))


def limit_disk(database_url: str, project_id: str, mb: int = QUOTA_MB) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE projects SET quota = %s WHERE project_id = %s",
            (json.dumps({"disk_mb": mb}), project_id),
        )


def home_of(user: User, project_id: str) -> Path:
    return Path(user.client.server.app[SETTINGS].data_dir) / "projects" / project_id


async def put(user: User, project_id: str, path: str, data: bytes | Any) -> tuple[int, Any]:
    resp = await user.client.put(
        f"/api/v2/projects/{project_id}/files/{path}", data=data, headers=user.headers
    )
    return resp.status, await resp.json()


async def test_hub_writes_stop_at_the_quota(owner: User, database_url: str) -> None:
    project_id = await new_project(owner)
    limit_disk(database_url, project_id)
    status, body = await put(owner, project_id, "big.bin", b"x" * (QUOTA_MB * MIB + 1))
    assert status == 413 and "not enough space in the project" in body["error"]
    assert not (home_of(owner, project_id) / "big.bin").exists()

    async def stream() -> AsyncIterator[bytes]:  # no Content-Length: cut off while written
        for _ in range(QUOTA_MB + 2):
            yield b"y" * MIB

    status, body = await put(owner, project_id, "streamed.bin", stream())
    assert status == 413 and "disk quota" in body["error"]
    assert not (home_of(owner, project_id) / "streamed.bin").exists()
    status, _ = await put(owner, project_id, "half.bin", b"z" * (6 * MIB))
    assert status == 201
    # Replacing a file counts only what it adds.
    status, _ = await put(owner, project_id, "half.bin", b"w" * (7 * MIB))
    assert status == 201
    # A process fills the rest (the hub learns of it when it measures again).
    (home_of(owner, project_id) / "by-a-process.bin").write_bytes(b"p" * (4 * MIB))
    await owner.client.server.app[DISK_QUOTA].usage(uuid.UUID(project_id), fresh=True)
    for attempt in (
        put(owner, project_id, "tiny.txt", b"1"),
        owner.call("POST", f"/api/v2/projects/{project_id}/uploads", {"path": "u", "size": 1}),
        owner.call(
            "POST",
            f"/api/v2/projects/{project_id}/files-ops",
            {"op": "copy", "src": "half.bin", "dst": "copy.bin"},
        ),
    ):
        status, body = await attempt
        assert status == 507 and "over its disk quota" in body["error"], body
    # Deleting makes room again.
    resp = await owner.client.delete(
        f"/api/v2/projects/{project_id}/files/half.bin", headers=owner.headers
    )
    assert resp.status == 204
    assert (await put(owner, project_id, "tiny.txt", b"1"))[0] == 201


async def test_a_copy_that_does_not_fit_is_refused(owner: User, database_url: str) -> None:
    project_id = await new_project(owner)
    limit_disk(database_url, project_id)
    assert (await put(owner, project_id, "six.bin", b"s" * (6 * MIB)))[0] == 201
    status, body = await owner.call(
        "POST",
        f"/api/v2/projects/{project_id}/files-ops",
        {"op": "copy", "src": "six.bin", "dst": "again.bin"},
    )
    assert status == 413 and "not enough space" in body["error"]
    assert not (home_of(owner, project_id) / "again.bin").exists()


async def test_the_admin_page_says_how_quotas_are_enforced(make_client: Any) -> None:
    admin = await new_admin(make_client)
    page = await (await admin.client.get("/admin")).text()
    assert 'data-testid="disk-enforcement"' in page
    assert "Disk quotas are enforced by accounting" in page


async def test_the_data_volume_keeps_its_reserve(make_client: Any) -> None:
    free_mb = os.statvfs("/tmp").f_bavail * os.statvfs("/tmp").f_frsize // MIB
    client = await make_client(disk_reserve_mb=free_mb + 100_000)
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    status, body = await put(owner, project_id, "a.txt", b"hello")
    assert status == 507 and "the server's disk is nearly full" in body["error"]
    status, body = await owner.call(
        "POST", f"/api/v2/projects/{project_id}/uploads", {"path": "u.bin", "size": 5}
    )
    assert status == 507 and "the server's disk is nearly full" in body["error"]


async def project_log(user: User, project_id: str) -> list[dict[str, Any]]:
    status, body = await user.call("GET", f"/api/v2/projects/{project_id}/events")
    assert status == 200
    return list(body["events"])


@pytest.mark.timeout(120)
async def test_a_running_project_over_its_quota_is_stopped_and_stays_stopped(
    owner: User, database_url: str
) -> None:
    project_id = await new_project(owner)
    limit_disk(database_url, project_id)
    # One file cannot outgrow the quota at all (RLIMIT_FSIZE): the kernel cuts it off.
    status, result = await owner.call(
        "POST",
        f"/api/v2/projects/{project_id}/exec",
        {"command": "head -c 12M /dev/zero > one.bin; echo $?; stat -c %s one.bin"},
    )
    assert status == 200, result
    code, size = result["stdout"].split()
    assert code != "0" and int(size) == QUOTA_MB * MIB, result
    # Many files can, until the next check.
    status, result = await owner.call(
        "POST",
        f"/api/v2/projects/{project_id}/exec",
        {"command": "head -c 6M /dev/zero > filler.bin && echo written"},
    )
    assert status == 200 and "written" in result["stdout"], result
    await wait_state(owner, project_id, "running")
    stopped = await owner.client.server.app[DISK_QUOTA].sweep()
    assert [str(p) for p, _ in stopped] == [project_id]
    await wait_state(owner, project_id, "stopped")
    stop = next(e for e in await project_log(owner, project_id) if e["kind"] == "project.stopped")
    assert "over its disk quota of 10.0 MiB" in stop["data"]["reason"]
    assert stop["data"]["disk_quota_mb"] == QUOTA_MB
    # Over the quota it does not start again, and says why.
    assert (await owner.call("POST", f"/api/v2/projects/{project_id}/start"))[0] == 202
    project = await wait_state(owner, project_id, "failed")
    assert "over its disk quota" in project["error"] and "delete files" in project["error"]
    # The files can still be deleted through the hub; then it starts.
    resp = await owner.client.delete(
        f"/api/v2/projects/{project_id}/files/one.bin", headers=owner.headers
    )
    assert resp.status == 204
    assert (await owner.call("POST", f"/api/v2/projects/{project_id}/start"))[0] == 202
    await wait_state(owner, project_id, "running")


@pytest.mark.timeout(120)
async def test_while_the_volume_is_short_a_growing_project_is_stopped(
    make_client: Any,
) -> None:
    free_mb = os.statvfs("/tmp").f_bavail * os.statvfs("/tmp").f_frsize // MIB
    client = await make_client(disk_reserve_mb=free_mb + 100_000)
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    status, result = await owner.call(
        "POST", f"/api/v2/projects/{project_id}/exec", {"command": "echo data > grown.txt"}
    )
    assert status == 200, result
    await wait_state(owner, project_id, "running")
    stopped = await client.server.app[DISK_QUOTA].sweep()
    assert [str(p) for p, _ in stopped] == [project_id]
    await wait_state(owner, project_id, "stopped")
    stop = next(e for e in await project_log(owner, project_id) if e["kind"] == "project.stopped")
    assert "the server's disk is nearly full" in stop["data"]["reason"]
