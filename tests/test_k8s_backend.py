"""The Kubernetes backend end to end: a hub with `--backend kubernetes` against the emulated
API server (tests/k8s_emulator.py), whose test kubelet runs each pod as a real agent. The
emulator enforces deployment.yaml as a real API server would: the hub's RBAC rules and the
projects' namespace's `restricted` Pod Security level; `emulator.refused` stays empty."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import sign_up
from tests.k8s_emulator import ADMIN, KubernetesEmulator
from tests.k8s_kubelet import TestKubelet
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(90)
NS = "cocalc-projects"
HUB_NS = "cocalc"
IMAGE = "cocalc-k8s-project:0.1.0"
MANIFESTS = Path(__file__).resolve().parent.parent / "deployment.yaml"


def deployment() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d]


@pytest.fixture
async def emulator() -> AsyncIterator[KubernetesEmulator]:
    emulator = KubernetesEmulator(deployment())
    await emulator.start()
    emulator.store.put("services", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "cocalc-nfs", "namespace": HUB_NS, "uid": "nfs-uid"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 2049}]},
    }, added=True)  # fmt: skip
    yield emulator
    await emulator.close()
    assert emulator.invalid == [], "the hub sent objects a real API server would refuse"
    assert emulator.refused == [], "the hub asked for what deployment.yaml does not allow"


@pytest.fixture
async def kubelet(emulator: KubernetesEmulator, tmp_path: Path) -> AsyncIterator[TestKubelet]:
    kubelet = TestKubelet(emulator.store, tmp_path / "data" / "projects", NS)
    kubelet.start()
    yield kubelet
    await kubelet.close()


@pytest.fixture
async def owner(make_client: Any, emulator: KubernetesEmulator, kubelet: TestKubelet) -> User:
    client = await make_client(
        backend="kubernetes", k8s_api_url=emulator.url, k8s_namespace=NS, k8s_start_timeout=30
    )
    return User(client, await sign_up(client))


def pod(emulator: KubernetesEmulator, project_id: str) -> dict[str, Any] | None:
    return emulator.store.get("pods", NS, f"project-{project_id}")


async def until(condition: Callable[[], Any], deadline: float = 20) -> Any:
    """Poll the emulator's store (in this process) until `condition()`, within a deadline."""
    async with asyncio.timeout(deadline):
        while not (result := condition()):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return result


def pod_lists(emulator: KubernetesEmulator) -> int:
    """How many times the pods were listed (not watched)."""
    prefix = f"/api/v1/namespaces/{NS}/pods?"
    return sum(
        1
        for method, path in emulator.requests
        if method == "GET" and path.startswith(prefix) and "watch=" not in path
    )


async def start(owner: User, project_id: str) -> None:
    status, _ = await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    assert status == 202
    # Longer than the hubs' k8s_start_timeout (30 s in these tests), so that a start that
    # fails shows as the hub's own failure, not as this wait's: loaded CI machines are slow.
    await wait_state(owner, project_id, "running", deadline=45)


async def test_start_use_and_stop_a_project_pod(
    owner: User, emulator: KubernetesEmulator, tmp_path: Path
) -> None:
    project_id = await new_project(owner)
    events: list[dict[str, Any]] = []
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    async with owner.client.get(f"/api/v2/projects/{project_id}/progress?wait=1") as resp:
        async for line in resp.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["state"] == "running", events
    messages = [e.get("message") for e in events]
    assert "Pulling the project image" in messages or "Running" in messages

    created = pod(emulator, project_id)
    assert created is not None
    assert created["metadata"]["labels"]["run"] == "project"
    claim = created["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim == "cocalc-projects"  # the manifests' claim, bound to the export's volume
    volume = emulator.store.get("persistentvolumes", "", "cocalc-projects-nfs")
    assert volume is not None
    assert volume["spec"]["nfs"] == {"server": "10.96.0.20", "path": "/"}
    assert volume["spec"]["claimRef"]["namespace"] == NS
    assert "token" not in json.dumps(created["spec"]["containers"][0]["env"])
    secret = emulator.store.get("secrets", NS, f"project-{project_id}-token")
    assert secret is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert (tmp_path / "data" / "projects" / project_id).is_dir()

    base = f"/api/v2/projects/{project_id}"
    resp = await owner.client.put(f"{base}/files/notes/hello.txt", data=b"hi pod",
                                  headers=owner.headers)  # fmt: skip
    assert resp.status in (200, 201, 204), await resp.text()
    status, listing = await owner.call("GET", f"{base}/listing?path=notes")
    assert status == 200
    assert [e["name"] for e in listing["entries"]] == ["hello.txt"]
    status, result = await owner.call("POST", f"{base}/exec", {"command": "cat notes/hello.txt"})
    assert status == 200, result
    assert result["stdout"] == "hi pod"

    status, _ = await owner.call("POST", f"{base}/stop")
    assert status == 202
    await wait_state(owner, project_id, "stopped")
    assert pod(emulator, project_id) is None
    assert emulator.store.get("secrets", NS, f"project-{project_id}-token") is None


async def test_watch_dropped_mid_stream_and_api_errors(
    owner: User, emulator: KubernetesEmulator
) -> None:
    first = await new_project(owner, "one")
    await start(owner, first)
    lists = pod_lists(emulator)
    emulator.drop_watches()
    emulator.fail_next(3, 500)  # the next calls (the re-watch, the create) fail for a while
    second = await new_project(owner, "two")
    await start(owner, second)
    assert pod(emulator, second) is not None
    # The reflector resumed from its resourceVersion: it did not need to list again.
    assert pod_lists(emulator) in (lists, lists + 1)
    await owner.call("POST", f"/api/v2/projects/{first}/stop")
    await wait_state(owner, first, "stopped")


async def test_watch_resumes_after_410_gone(owner: User, emulator: KubernetesEmulator) -> None:
    project_id = await new_project(owner)
    emulator.compact()
    emulator.drop_watches()
    await start(owner, project_id)
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped")


async def test_pod_deleted_behind_the_hubs_back(
    owner: User, emulator: KubernetesEmulator, kubelet: TestKubelet
) -> None:
    project_id = await new_project(owner)
    await start(owner, project_id)
    async with aiohttp.ClientSession() as http:  # as `kubectl delete pod` would
        url = f"{emulator.url}/api/v1/namespaces/{NS}/pods/project-{project_id}"
        async with http.delete(url, headers={"Authorization": ADMIN}) as resp:
            assert resp.status == 200
    # As long as a start may take: with pods run as containers, the pod is gone only
    # once podman has stopped and removed its container, slow on a loaded machine.
    project = await wait_state(owner, project_id, "failed", deadline=45)
    assert "deleted" in project["error"]
    await start(owner, project_id)  # (a CI run once took over 20 s for this one)


async def test_agent_killed_out_of_memory(
    owner: User, emulator: KubernetesEmulator, kubelet: TestKubelet
) -> None:
    project_id = await new_project(owner)
    await start(owner, project_id)
    kubelet.agents[f"project-{project_id}"].process.kill()
    project = await wait_state(owner, project_id, "failed")
    assert "OOMKilled" in project["error"]
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped")
    await until(lambda: pod(emulator, project_id) is None)


async def test_image_pull_backoff_fails_with_the_reason(
    owner: User, emulator: KubernetesEmulator, kubelet: TestKubelet
) -> None:
    kubelet.broken_images.add(IMAGE)
    project_id = await new_project(owner)
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    project = await wait_state(owner, project_id, "failed")
    assert "ImagePullBackOff" in project["error"]
    assert "could not be pulled" in project["error"]
    await until(lambda: pod(emulator, project_id) is None)  # the failed pod is removed


async def test_a_hub_restart_keeps_pods_and_the_database_in_agreement(
    make_client: Any, emulator: KubernetesEmulator, kubelet: TestKubelet, database_url: str
) -> None:
    """Pods outlive the hub: the next hub adopts the running one and deletes the pod of a
    project the database calls stopped."""
    import psycopg

    settings = dict(
        backend="kubernetes", k8s_api_url=emulator.url, k8s_namespace=NS, k8s_start_timeout=30
    )
    first = await make_client(**settings)
    owner = User(first, await sign_up(first))
    kept, orphan = await new_project(owner), await new_project(owner)
    for project_id in (kept, orphan):
        await start(owner, project_id)
        await wait_state(owner, project_id, "running")
    await first.close()
    assert pod(emulator, kept) and pod(emulator, orphan)  # still running without a hub
    with psycopg.connect(database_url) as conn:  # e.g. an admin marked it stopped meanwhile
        conn.execute("UPDATE projects SET state = 'stopped' WHERE project_id = %s", (orphan,))
    second = await make_client(**settings)
    await until(lambda: pod(emulator, orphan) is None)
    again = User(second, owner.info)
    second.session.cookie_jar.update_cookies(
        {c.key: c.value for c in first.session.cookie_jar}, second.make_url("/")
    )
    _, project = await again.call("GET", f"/api/v2/projects/{kept}")
    assert project["state"] == "running"
    status, body = await again.call("POST", f"/api/v2/projects/{kept}/exec", {"command": "echo ok"})
    assert status == 200 and body["stdout"] == "ok\n"


async def test_site_over_commit_sets_the_pod_requests(
    owner: User, emulator: KubernetesEmulator, database_url: str
) -> None:
    import psycopg

    project_id = await new_project(owner)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO site_settings (name, value) VALUES ('default_quotas', %s)"
            " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            (json.dumps({"cpu": 2, "memory_mb": 4000, "cpu_oc": 4, "mem_oc": 2}),),
        )
    try:
        await start(owner, project_id)
        created = await until(lambda: pod(emulator, project_id))
        resources = created["spec"]["containers"][0]["resources"]
        assert resources["limits"]["cpu"] in ("2", "2000m")
        assert resources["requests"]["cpu"] == "500m"
        assert resources["requests"]["memory"] == "2000Mi"
        await wait_state(owner, project_id, "running")
        await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
        await wait_state(owner, project_id, "stopped")
    finally:
        with psycopg.connect(database_url) as conn:
            conn.execute("DELETE FROM site_settings WHERE name = 'default_quotas'")


async def test_resolved_names_are_stored_and_win_over_the_scheme(
    owner: User, emulator: KubernetesEmulator, database_url: str
) -> None:
    """Names are kept on the project once chosen: a later change of naming scheme (here
    simulated by editing the stored names) never moves a project's pod or files."""
    import psycopg

    project_id = await new_project(owner)
    await start(owner, project_id)
    await wait_state(owner, project_id, "running")
    with psycopg.connect(database_url) as conn:
        (resolved,) = conn.execute(
            "SELECT resolved FROM projects WHERE project_id = %s", (project_id,)
        ).fetchone()
    assert resolved["pod"] == f"project-{project_id}"
    assert resolved["home_subpath"] == f"projects/{project_id}"
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped")
    with psycopg.connect(database_url) as conn:  # names from an older scheme
        conn.execute(
            'UPDATE projects SET resolved = resolved || \'{"pod": "legacy-pod"}\''
            " WHERE project_id = %s",
            (project_id,),
        )
    await start(owner, project_id)
    created = await until(lambda: emulator.store.get("pods", NS, "legacy-pod"))
    assert created["metadata"]["labels"]["project_id"] == project_id
    await wait_state(owner, project_id, "running")
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped")
    assert emulator.store.get("pods", NS, "legacy-pod") is None


async def test_admin_restarts_the_projects_on_an_old_image_tag(
    make_client: Any, emulator: KubernetesEmulator, kubelet: TestKubelet
) -> None:
    """A new COCALC_K8S_PROJECT_TAG applies at each project's next start: the admin sees
    who still runs the old tag, and restarts them onto the new one."""
    from tests.conftest import unique_email

    email = unique_email("admin")
    settings = dict(backend="kubernetes", k8s_api_url=emulator.url, k8s_namespace=NS,
                    k8s_start_timeout=30, admin_email=email)  # fmt: skip
    first = await make_client(**settings)
    admin = User(first, await sign_up(first, email=email, password="image horse"))
    projects = [await new_project(admin, "old one"), await new_project(admin, "old two")]
    for project_id in projects:
        await start(admin, project_id)
    status, report = await admin.call("GET", "/api/v2/admin/project-images")
    assert status == 200
    assert report == {
        "current": "0.1.0",
        "running": [{"tag": "0.1.0", "project_ids": sorted(projects), "outdated": False}],
    }
    await first.close()

    second = await make_client(**{**settings, "k8s_project_tag": "0.2.0"})
    credentials = {"email": email, "password": "image horse"}
    resp = await second.post("/api/v2/auth/sign-in", json=credentials)
    assert resp.status == 200
    admin = User(second, await resp.json())
    member_client = await make_client(same_hub_as=second)
    member = User(member_client, await sign_up(member_client))
    status, _ = await member.call("GET", "/api/v2/admin/project-images")
    assert status in (403, 404)

    async with asyncio.timeout(20):  # until the new hub has adopted the pods
        while True:
            _, report = await admin.call("GET", "/api/v2/admin/project-images")
            if report["running"]:
                break
            await asyncio.sleep(0.05)  # polling the API under test: there is no event
    assert report["current"] == "0.2.0"
    assert report["running"] == [
        {"tag": "0.1.0", "project_ids": sorted(projects), "outdated": True}
    ]
    status, body = await admin.call(
        "POST", "/api/v2/admin/project-images/restart", {"tag": "0.2.0"}
    )
    assert status == 400 and "current" in body["error"]
    status, body = await admin.call("POST", "/api/v2/admin/project-images/restart", {})
    assert status == 202
    assert body == {"restarting": sorted(projects)}
    for project_id in projects:
        await until(lambda p=project_id: (pod(emulator, p) or {}).get("metadata", {})
                    .get("labels", {}).get("project_tag") == "0.2.0", deadline=40)  # fmt: skip
        await wait_state(admin, project_id, "running")
    _, report = await admin.call("GET", "/api/v2/admin/project-images")
    assert report["running"] == [
        {"tag": "0.2.0", "project_ids": sorted(projects), "outdated": False}
    ]
    resp = await second.get("/admin")
    page = await resp.text()
    assert resp.status == 200 and 'data-testid="project-images"' in page
    assert '<code>0.2.0</code> <span class="badge">current</span>' in page
