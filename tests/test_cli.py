"""`cocalc-k8s` as users run it: real processes, a real embedded PostgreSQL, HTTP on loopback.

Each test starts the hub with `python -m cocalc_k8s`, waits for the printed URL and for
/readyz, and looks at exit codes, stderr and the processes left behind (psutil).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from cocalc_k8s.db.embedded import EmbeddedPostgres
from tests.conftest import TEMPLATE_DB, unique_email

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hub_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without any COCALC_* or DATABASE_URL of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCALC_")}
    env.pop("DATABASE_URL", None)
    env["COCALC_CONTENT_PORT"] = "0"  # hubs in tests must not fight over the default port
    env["COCALC_SSH_PORT"] = "0"  # nor over the SSH server's
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cocalc_k8s", *args],
        capture_output=True,
        text=True,
        env=env or hub_env(),
        timeout=START_TIMEOUT,
        check=False,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    """One `cocalc-k8s: error:` line naming the problem, no traceback."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert words in result.stderr, result.stderr


class Hub:
    """A `cocalc-k8s serve` process; its stdout and stderr are drained by threads."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cocalc_k8s", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or hub_env(),
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True).start()
        self._stderr = threading.Thread(
            target=lambda: self.stderr_lines.extend(self.process.stderr or []), daemon=True
        )
        self._stderr.start()

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self.stdout.put(line)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def wait_url(self, timeout: float = START_TIMEOUT) -> str:
        """The URL the hub prints once it serves."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.stdout.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.process.poll() is not None:
                    self._stderr.join(5)
                    code = self.process.returncode
                    raise AssertionError(f"hub exited {code}: {self.stderr}") from None
                continue
            if "is running: open " in line:
                return line.split("open ", 1)[1].strip().rstrip("/")
        raise AssertionError(f"hub printed no URL within {timeout}s: {self.stderr}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(STOP_TIMEOUT)
        self._stderr.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


class Api:
    """A browser-like JSON client with its own cookie jar."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        handlers: list[Any] = [urllib.request.HTTPCookieProcessor(self.cookies)]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)
        self.csrf = ""

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "X-CSRF-Token": self.csrf}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, _json(resp.read()), resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read()), exc.headers

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except urllib.error.URLError as exc:  # only "not listening yet" is expected
                if not isinstance(exc.reason, ConnectionError):
                    raise
            time.sleep(0.05)
        raise AssertionError(f"{self.base}/readyz not 200 within {timeout}s")

    def sign_up(self, email: str, password: str = "correct horse") -> Any:
        status, body, headers = self.request(
            "POST", "/api/v2/auth/sign-up", {"email": email, "password": password, "name": "T"}
        )
        assert status == 201, body
        self.csrf = body["csrf_token"]
        return headers

    def sign_in(self, email: str, password: str = "correct horse") -> int:
        status, body, _ = self.request(
            "POST", "/api/v2/auth/sign-in", {"email": email, "password": password}
        )
        if status == 200:
            self.csrf = body["csrf_token"]
        return status

    def account(self) -> Any:
        status, body, _ = self.request("GET", "/api/v2/account")
        assert status == 200, body
        return body


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def start(
    *args: str, env: dict[str, str] | None = None, context: ssl.SSLContext | None = None
) -> tuple[Hub, Api]:
    hub = Hub(*args, env=env)
    try:
        api = Api(hub.wait_url(), context)
        api.wait_ready()
    except BaseException:
        hub.kill()
        raise
    return hub, api


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """The postmaster whose command line names this pgdata, and its children."""
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if str(pgdata) in cmdline and any(Path(c).name == "postgres" for c in cmdline[:1]):
            found.append(proc)
            with contextlib.suppress(psutil.NoSuchProcess):
                found.extend(proc.children(recursive=True))
    return found


def assert_gone(processes: list[psutil.Process], timeout: float = STOP_TIMEOUT) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"still running: {alive}"


@pytest.fixture
def hubs() -> Iterator[list[Hub]]:
    """Hubs a test started; any still running at the end is killed."""
    started: list[Hub] = []
    yield started
    for hub in started:
        hub.kill()


@pytest.fixture(scope="module")
def warm_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory `cocalc-k8s migrate` initialised: the cluster and the schema exist."""
    data_dir = tmp_path_factory.mktemp("warm")
    result = run_cli("migrate", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "newest revision" in result.stdout
    return data_dir


@pytest.fixture
def fresh_database(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database of this test's own on the session server."""
    name = f"cli_{os.urandom(6).hex()}"
    with psycopg.connect(postgres.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    yield postgres.admin_url(name)
    with psycopg.connect(postgres.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_serve_keeps_data_across_sigterm_and_sigint(tmp_path: Path, hubs: list[Hub]) -> None:
    data_dir = tmp_path / "data"
    port = str(free_port())
    hub, api = start("--data-dir", str(data_dir), "--port", port)
    hubs.append(hub)
    assert api.base == f"http://127.0.0.1:{port}"
    email = unique_email()
    api.sign_up(email)
    postgres = postgres_processes(data_dir / "postgres" / "pgdata")
    assert postgres, "the embedded PostgreSQL should run while the hub does"

    assert hub.stop(signal.SIGTERM) == 0, hub.stderr  # within Hub.stop's deadline
    assert_gone(postgres)
    assert "Traceback" not in hub.stderr

    hub, api = start("--data-dir", str(data_dir), "--port", port)
    hubs.append(hub)
    assert api.sign_in(email) == 200
    assert api.account()["email"] == email
    postgres = postgres_processes(data_dir / "postgres" / "pgdata")
    assert hub.stop(signal.SIGINT) == 0, hub.stderr
    assert_gone(postgres)


def test_sigkill_of_the_hub_takes_its_postgres_along(warm_data_dir: Path, hubs: list[Hub]) -> None:
    pgdata = warm_data_dir / "postgres" / "pgdata"
    hub, _ = start("--data-dir", str(warm_data_dir), "--port", str(free_port()))
    hubs.append(hub)
    postgres = postgres_processes(pgdata)
    assert postgres
    hub.process.kill()
    hub.process.wait(STOP_TIMEOUT)
    assert_gone(postgres)

    hub, api = start("--data-dir", str(warm_data_dir), "--port", str(free_port()))
    hubs.append(hub)
    api.sign_up(unique_email())
    assert hub.stop() == 0


def test_a_second_hub_on_the_same_data_dir_is_refused(warm_data_dir: Path, hubs: list[Hub]) -> None:
    hub, api = start("--data-dir", str(warm_data_dir), "--port", str(free_port()))
    hubs.append(hub)
    second = run_cli("serve", "--data-dir", str(warm_data_dir), "--port", str(free_port()))
    assert_clean_error(second, 3, "another process is using the database")
    assert api.request("GET", "/readyz")[0] == 200  # the first hub's database is untouched
    assert hub.stop() == 0


def test_migrate_is_idempotent(warm_data_dir: Path) -> None:
    again = run_cli("migrate", "--data-dir", str(warm_data_dir))
    assert again.returncode == 0, again.stderr
    assert "database is at the newest revision" in again.stdout
    assert "migrated from" not in again.stderr
    assert not postgres_processes(warm_data_dir / "postgres" / "pgdata")


def test_serve_uses_database_url(tmp_path: Path, fresh_database: str, hubs: list[Hub]) -> None:
    data_dir = tmp_path / "data"
    env = hub_env(DATABASE_URL=fresh_database)
    hub, api = start("--data-dir", str(data_dir), "--port", str(free_port()), env=env)
    hubs.append(hub)
    email = unique_email()
    api.sign_up(email)
    assert not (data_dir / "postgres").exists()
    with psycopg.connect(fresh_database) as conn:
        row = conn.execute("SELECT 1 FROM accounts WHERE email = %s", (email,)).fetchone()
    assert row is not None
    assert hub.stop() == 0


def test_unknown_database_revision_is_refused(tmp_path: Path, fresh_database: str) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    env = hub_env(COCALC_DATABASE_URL=fresh_database, COCALC_DATA_DIR=str(tmp_path))
    for command in (["serve", "--port", str(free_port())], ["migrate"]):
        result = run_cli(*command, env=env)
        assert_clean_error(result, 3, "'9999_future'")
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(errors) == 1, result.stderr


def test_make_admin(tmp_path: Path, fresh_database: str, hubs: list[Hub]) -> None:
    env = hub_env(DATABASE_URL=fresh_database, COCALC_DATA_DIR=str(tmp_path))
    hub, api = start("--port", str(free_port()), env=env)
    hubs.append(hub)
    email = unique_email()
    api.sign_up(email)
    assert api.account()["is_admin"] is False

    result = run_cli("make-admin", email.upper(), env=env)
    assert result.returncode == 0, result.stderr
    assert "is now an admin" in result.stdout
    fresh = Api(api.base)
    assert fresh.sign_in(email) == 200
    assert fresh.account()["is_admin"] is True
    # The running hub dropped its cached principal on the NOTIFY: the old session sees it.
    deadline = time.monotonic() + 5
    while not api.account()["is_admin"]:
        assert time.monotonic() < deadline, "the running hub kept a stale principal"
        time.sleep(0.05)

    unknown = run_cli("make-admin", unique_email(), env=env)
    assert_clean_error(unknown, 1, "no account with email")
    assert hub.stop() == 0


def test_admin_email_is_admin_at_sign_up(
    tmp_path: Path, fresh_database: str, hubs: list[Hub]
) -> None:
    email = unique_email("boss")
    env = hub_env(DATABASE_URL=fresh_database, COCALC_DATA_DIR=str(tmp_path))
    hub, api = start("--port", str(free_port()), "--admin-email", email, env=env)
    hubs.append(hub)
    api.sign_up(email)
    assert api.account()["is_admin"] is True
    other = Api(api.base)
    other.sign_up(unique_email())
    assert other.account()["is_admin"] is False
    assert hub.stop() == 0


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--port", "0"], {}, "--port must be between 1 and 65535"),
        (["--log-level", "loud"], {}, "--log-level must be one of"),
        ([], {"COCALC_PORT": "abc"}, "--port must be a number, not 'abc'"),
        (["--tls", "files"], {}, "--tls files needs both --tls-cert and --tls-key"),
        ([], {"COCALC_FIRST_ACCOUNT_ADMIN": "maybe"}, "must be true or false"),
        (
            ["--host", "0.0.0.0", "--first-account-admin"],
            {},
            "--first-account-admin would make whoever signs up first an admin",
        ),
        (
            ["--admin-email", "me@example.org"],
            {"COCALC_HOST": "0.0.0.0"},
            "is reachable from other machines (--host 0.0.0.0)",
        ),
    ],
    ids=[
        "port-0",
        "log-level",
        "env-port",
        "tls-files",
        "env-bool",
        "public-first",
        "public-email",
    ],
)
def test_bad_settings_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], words: str
) -> None:
    result = run_cli("serve", "--data-dir", str(tmp_path), *args, env=hub_env(**env))
    assert_clean_error(result, 2, words)
    assert not (tmp_path / "postgres").exists()


def test_port_in_use_is_a_clear_error_and_starts_no_database(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--data-dir", str(tmp_path), "--port", str(port))
    assert_clean_error(result, 1, f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert not postgres_processes(tmp_path / "postgres" / "pgdata")
    with socket.socket() as taken:  # the content origin's port too
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve", "--data-dir", str(tmp_path), "--port", str(free_port()),
            "--content-port", str(port),
        )  # fmt: skip
    assert_clean_error(result, 1, f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert not postgres_processes(tmp_path / "postgres" / "pgdata")


def test_json_access_log(tmp_path: Path, fresh_database: str, hubs: list[Hub]) -> None:
    env = hub_env(DATABASE_URL=fresh_database, COCALC_DATA_DIR=str(tmp_path))
    hub, api = start("--port", str(free_port()), "--log-format", "json", env=env)
    hubs.append(hub)
    assert api.request("GET", "/healthz?secret=1")[0] == 200
    assert hub.stop() == 0
    entries = [json.loads(line) for line in hub.stderr_lines]  # every line is JSON
    access = [e for e in entries if e["logger"] == "cocalc_k8s.access"]
    healthz = next(e for e in access if e["path"] == "/healthz")
    assert healthz["method"] == "GET"
    assert healthz["status"] == 200
    assert isinstance(healthz["duration_ms"], float)
    assert "secret" not in json.dumps(access)  # query strings stay out of the log
    assert any(e["message"].startswith("init_web done") for e in entries)


def test_a_started_hub_leaves_startups_objects_out_of_collections(
    tmp_path: Path, fresh_database: str, hubs: list[Hub]
) -> None:
    """A full collection over the ~250,000 objects of the started hub stopped its event
    loop for 250-300 ms every few seconds under editing load (bench/collab.py)."""
    env = hub_env(DATABASE_URL=fresh_database, COCALC_DATA_DIR=str(tmp_path))
    metrics_port = free_port()
    hub, _ = start("--port", str(free_port()), "--metrics-port", str(metrics_port), env=env)
    hubs.append(hub)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    frozen = next(line for line in text.splitlines() if line.startswith("cocalc_gc_frozen"))
    assert float(frozen.split()[1]) > 50_000, frozen
    assert hub.stop() == 0


def test_purge_projects_removes_old_deleted_projects_only(
    tmp_path: Path, fresh_database: str
) -> None:
    env = hub_env(DATABASE_URL=fresh_database, COCALC_DATA_DIR=str(tmp_path))
    old, recent, live = (str(uuid.uuid4()) for _ in range(3))
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        for project_id, deleted in ((old, "40 days"), (recent, "1 day"), (live, None)):
            conn.execute(
                "INSERT INTO projects (project_id, title, deleted) VALUES (%s, 'p', "
                "CASE WHEN %s::interval IS NULL THEN NULL ELSE now() - %s::interval END)",
                (project_id, deleted, deleted),
            )
            (tmp_path / "projects" / project_id).mkdir(parents=True)
            (tmp_path / "projects" / project_id / "file.txt").write_text("data")
    dry = run_cli("purge-projects", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would purge {old}" in dry.stdout and recent not in dry.stdout
    assert (tmp_path / "projects" / old).exists()
    result = run_cli("purge-projects", "--older-than-days", "30", env=env)
    assert result.returncode == 0, result.stderr
    assert "purged 1 deleted project" in result.stdout
    assert not (tmp_path / "projects" / old).exists()
    assert (tmp_path / "projects" / recent / "file.txt").exists()
    assert (tmp_path / "projects" / live / "file.txt").exists()
    with psycopg.connect(fresh_database) as conn:
        left = {str(r[0]) for r in conn.execute("SELECT project_id FROM projects")}
    assert left == {recent, live}
    bad = run_cli("purge-projects", "--older-than-days", "-1", env=env)
    assert_clean_error(bad, 2, "must not be negative")
