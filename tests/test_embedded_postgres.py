"""The embedded PostgreSQL server: a real cluster in a temporary directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from cocalc_k8s.db.embedded import DATABASE, EmbeddedPostgres, EmbeddedPostgresError


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cluster initialised once for this module; each test starts and stops it."""
    root = tmp_path_factory.mktemp("embedded")
    server = EmbeddedPostgres(root)
    server.start()
    server.stop()
    return root


@pytest.fixture
def server(root: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(root)
    server.start()
    yield server
    server.stop()


def test_restart_keeps_the_data(root: Path) -> None:
    server = EmbeddedPostgres(root)
    server.start()
    assert server.running
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    assert server.pid is not None
    processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children()]
    server.stop()
    assert not server.running
    assert server.pid is None
    _, alive = psutil.wait_procs(processes, timeout=5)
    assert not alive

    server.start()
    try:
        with psycopg.connect(server.url) as conn:
            assert (42,) in conn.execute("SELECT n FROM kept").fetchall()
    finally:
        server.stop()
    server.stop()  # stopping twice is harmless


def test_listens_only_on_its_unix_socket(server: EmbeddedPostgres) -> None:
    assert server.pid is not None
    postmaster = psutil.Process(server.pid)
    assert postmaster.net_connections(kind="inet") == []
    assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SELECT current_database()").fetchone() == (DATABASE,)


def test_runs_as_an_unprivileged_user(server: EmbeddedPostgres) -> None:
    assert server.pid is not None
    user = psutil.Process(server.pid).username()
    assert user != "root"
    if os.geteuid() == 0:
        assert user == "embedded_postgres"


def test_one_server_per_directory(server: EmbeddedPostgres, root: Path) -> None:
    with pytest.raises(EmbeddedPostgresError, match="another process is using"):
        EmbeddedPostgres(root).start()
    with psycopg.connect(server.url) as conn:  # the running one is untouched
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_starts_after_its_server_was_killed(root: Path) -> None:
    server = EmbeddedPostgres(root)
    server.start()
    assert server.pid is not None
    postmaster = psutil.Process(server.pid)
    children = postmaster.children()
    postmaster.kill()  # leaves a postmaster.pid that says "ready"
    _, alive = psutil.wait_procs([postmaster, *children], timeout=5)
    assert not alive  # its children notice the postmaster's death and exit
    server.stop()
    assert (server.pgdata / "postmaster.pid").exists()

    server.start()
    try:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_pgdata_without_pg_version_is_refused(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "something").write_text("not a cluster")
    with pytest.raises(EmbeddedPostgresError, match="is not empty but has no PG_VERSION"):
        EmbeddedPostgres(tmp_path).start()
    # The failed start released the directory: a second attempt fails the same way.
    with pytest.raises(EmbeddedPostgresError, match="no PG_VERSION"):
        EmbeddedPostgres(tmp_path).start()


def test_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = EmbeddedPostgres(Path("db"))
    assert server.root == tmp_path / "db"
    assert f"host={tmp_path / 'db' / 'run'}" in server.url
