"""The `cocalc-k8s` command: serve | migrate | make-admin | check.

Start-up is an ordered list of named steps, each logged with its duration. Errors a user
can fix (a bad setting, a database at an unknown revision, a port in use) are printed as
one clear line with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from types import FrameType
from typing import Any

from cocalc_k8s import __version__
from cocalc_k8s.core.errors import DomainError
from cocalc_k8s.core.settings import (
    Settings,
    SettingsError,
    data_dir_notice,
    load_settings,
    setting_fields,
)
from cocalc_k8s.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from cocalc_k8s.logs import configure_logging

# aiohttp, SQLAlchemy and alembic are imported where they are used: `--help` and a bad
# setting answer at once, and serve imports them while nothing else waits.

log = logging.getLogger("cocalc_k8s")

EXIT_USAGE = 2
EXIT_DATABASE = 3
SHUTDOWN_TIMEOUT = 5.0  # seconds in-flight requests get to finish after SIGTERM


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class StopRequested(BaseException):
    """SIGTERM or SIGINT before the hub is serving: unwind, stopping what was started."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequested(signum)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    log.info("%s done in %.0f ms", name, (time.perf_counter() - start) * 1000)


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL: the configured one, or an embedded server run for the duration."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.data_dir / "postgres")
    with step("init_embedded_postgres"):
        try:
            server.start()
        except EmbeddedPostgresError as exc:
            raise CliError(f"cannot start the embedded PostgreSQL: {exc}", EXIT_DATABASE) from None
    try:
        yield server.url
    finally:
        with step("stop_embedded_postgres"):
            server.stop()


def migrate_database(url: str) -> None:
    from sqlalchemy.exc import OperationalError

    from cocalc_k8s.db.migrate import RevisionError, upgrade

    with step("init_migrations"):
        try:
            before, after = upgrade(url)
        except RevisionError as exc:
            raise CliError(f"refusing to run: {exc}", EXIT_DATABASE) from None
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise CliError(f"cannot connect to the database: {reason}", EXIT_DATABASE) from None
    if before != after:
        log.info("database migrated from %s to %s", before or "empty", after)


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound (not yet listening) sockets for every address of `host`.

    Binding before the database starts makes a port in use fail in milliseconds, with nothing
    to clean up; not listening yet means clients are refused, not left hanging, until ready.
    """
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: one socket per family
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:  # socket.gaierror too
        for sock in sockets:
            sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets


async def run_hub(
    settings: Settings,
    url: str,
    sockets: list[socket.socket],
    content_sockets: list[socket.socket],
    ssl_context: ssl.SSLContext | None,
    ssh_sockets: list[socket.socket] | None = None,
) -> None:
    from aiohttp import web

    from cocalc_k8s.app import create_app
    from cocalc_k8s.keys import CONTENT_ORIGIN, METRICS
    from cocalc_k8s.web.access_log import AccessLogger
    from cocalc_k8s.web.metrics import start_metrics_site

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    with step("init_web"):
        app = create_app(
            settings,
            database_url=url,
            ssl_context=ssl_context,
            content_sockets=content_sockets,
            ssh_sockets=ssh_sockets,
        )
        runner = web.AppRunner(
            app,
            access_log_class=AccessLogger,
            access_log=logging.getLogger("cocalc_k8s.access"),
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        freeze_what_startup_made()
        try:
            for sock in sockets:
                await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        except OSError as exc:
            await runner.cleanup()
            raise CliError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            ) from None
    redirect_runner = None
    if settings.redirect_port and settings.scheme == "https":
        from cocalc_k8s.web.redirect import start_redirect_site

        with step("init_redirect"):
            try:
                redirect_runner = await start_redirect_site(
                    settings.public_url, settings.host, settings.redirect_port
                )
            except OSError as exc:
                await runner.cleanup()
                raise CliError(
                    f"cannot listen on {settings.host}:{settings.redirect_port}: "
                    f"{exc.strerror or exc}"
                ) from None
    metrics_runner = None
    if settings.metrics_port:
        with step("init_metrics"):
            metrics_runner = await start_metrics_site(
                app[METRICS], settings.metrics_host, settings.metrics_port
            )
    print(f"cocalc-k8s is running: open {settings.public_url}/", flush=True)
    log.info("project content is served on its own origin: %s", app[CONTENT_ORIGIN])
    await stop.wait()
    log.info("stopping")
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    if redirect_runner is not None:
        await redirect_runner.cleanup()
    await runner.cleanup()


def freeze_what_startup_made() -> None:
    """Leave the objects the hub holds once started (its modules, classes, compiled
    queries: about 250,000 of them) out of every later garbage collection.

    A full collection walks every tracked object; with these in it, it stopped the event
    loop for 250-300 ms every 6-10 s under editing load (the objects that keystrokes leave
    behind for a while start one), which was the whole of the editor's p99 at 50
    documents (bench/collab.py). What startup made lives as long as the hub. It is
    frozen without a collection first: that would add 200 ms to every start to find a
    dozen objects of garbage (measured), which then stay. Later garbage (what requests
    and documents make) is collected as before, in far shorter pauses."""
    gc.freeze()


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """The hub runs on uvloop when it is installed: the proxy answers about a fifth more
    requests per CPU second on it (bench/proxy.py). Plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def cmd_serve(settings: Settings) -> None:
    from cocalc_k8s.tls import server_ssl_context

    # Everything a user can get wrong is checked before the database starts.
    with step("init_tls"):
        ssl_context = server_ssl_context(settings)
    sockets = bind_sockets(settings.host, settings.port)
    content_sockets: list[socket.socket] = []
    ssh_sockets: list[socket.socket] = []
    try:
        content_sockets = bind_sockets(settings.host, settings.content_port)
        if settings.ssh_port:
            ssh_sockets = bind_sockets(settings.host, settings.ssh_port)
    except CliError:
        for sock in sockets + content_sockets:
            sock.close()
        raise
    try:
        with database(settings) as url:
            migrate_database(url)
            run_event_loop(
                run_hub(settings, url, sockets, content_sockets, ssl_context, ssh_sockets)
            )
    finally:
        for sock in sockets + content_sockets + ssh_sockets:
            sock.close()


def cmd_migrate(settings: Settings) -> None:
    with database(settings) as url:
        migrate_database(url)
    print("database is at the newest revision")


def cmd_make_admin(settings: Settings, email: str) -> None:
    from cocalc_k8s.db.engine import create_hub_engine
    from cocalc_k8s.services.accounts import AccountPolicy, AccountService

    async def promote(url: str) -> None:
        engine = create_hub_engine(url, pool_size=1)
        try:
            await AccountService(engine, AccountPolicy()).make_admin(email)
        finally:
            await engine.dispose()

    with database(settings) as url:
        migrate_database(url)
        try:
            asyncio.run(promote(url))
        except DomainError as exc:
            raise CliError(exc.message) from None
    print(f"{email} is now an admin")


def cmd_purge_projects(settings: Settings, *, days: int, dry_run: bool) -> None:
    from datetime import timedelta

    from cocalc_k8s.db.engine import create_hub_engine
    from cocalc_k8s.services.purge import purge_deleted_projects

    async def purge(url: str) -> list[Any]:
        engine = create_hub_engine(url, pool_size=1)
        try:
            return await purge_deleted_projects(
                engine,
                settings.data_dir / "projects",
                older_than=timedelta(days=days),
                dry_run=dry_run,
            )
        finally:
            await engine.dispose()

    with database(settings) as url:
        migrate_database(url)
        purged = asyncio.run(purge(url))
    verb = "would purge" if dry_run else "purged"
    for project_id in purged:
        print(f"{verb} {project_id}")
    print(f"{verb} {len(purged)} deleted project(s) older than {days} day(s)")


def cmd_check(settings: Settings) -> None:
    for f in setting_fields():
        value = getattr(settings, f.name)
        shown = "(set, hidden)" if f.metadata["secret"] and value else value
        print(f"{f.name:20} {shown}")
    from cocalc_k8s.db.engine import create_sync_engine
    from cocalc_k8s.db.migrate import RevisionError, check_known_revision, head_revision

    with database(settings) as url:
        engine = create_sync_engine(url)
        try:
            current = check_known_revision(engine)
        except RevisionError as exc:
            raise CliError(str(exc), EXIT_DATABASE) from None
        finally:
            engine.dispose()
    print(f"{'database revision':20} {current or 'empty'} (newest: {head_revision()})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cocalc-k8s",
        description="A self-hosted, collaborative computing platform.",
    )
    parser.add_argument("--version", action="version", version=f"cocalc-k8s {__version__}")
    settings_flags = argparse.ArgumentParser(add_help=False)
    group = settings_flags.add_argument_group("settings (each also read from COCALC_*)")
    for f in setting_fields():
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": None,
            "help": f"{f.metadata['help']} [env: {f.metadata['env']}]",
        }
        if str(f.type) == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _flag_parser(f)
            kwargs["metavar"] = f.name.upper()
        group.add_argument(f.metadata["flag"], **kwargs)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", parents=[settings_flags], help="run the hub")
    commands.add_parser("migrate", parents=[settings_flags], help="migrate the database only")
    admin = commands.add_parser(
        "make-admin", parents=[settings_flags], help="make an existing account an admin"
    )
    admin.add_argument("email")
    commands.add_parser("check", parents=[settings_flags], help="show settings, check database")
    purge = commands.add_parser(
        "purge-projects",
        parents=[settings_flags],
        help="remove the files and records of projects deleted long enough ago",
    )
    purge.add_argument(
        "--older-than-days", type=int, default=30, metavar="DAYS",
        help="only projects deleted at least this many days ago (default 30)",
    )  # fmt: skip
    purge.add_argument("--dry-run", action="store_true", help="list them, change nothing")
    return parser


def _flag_parser(f: dataclasses.Field[Any]) -> Any:
    from cocalc_k8s.core.settings import parse_value

    def parse(raw: str) -> Any:
        try:
            return parse_value(f, raw)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return parse


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in setting_fields()}
    try:
        settings = load_settings(overrides=overrides)
    except SettingsError as exc:
        print(f"cocalc-k8s: error: {exc.message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    configure_logging(settings.log_level, settings.log_format)
    if notice := data_dir_notice(settings.data_dir, is_root=os.geteuid() == 0):
        log.info("%s", notice)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _request_stop)
    try:
        if args.command == "serve":
            cmd_serve(settings)
        elif args.command == "migrate":
            cmd_migrate(settings)
        elif args.command == "make-admin":
            cmd_make_admin(settings, args.email)
        elif args.command == "purge-projects":
            if args.older_than_days < 0:
                raise CliError("--older-than-days must not be negative", EXIT_USAGE)
            cmd_purge_projects(settings, days=args.older_than_days, dry_run=args.dry_run)
        elif args.command == "check":
            cmd_check(settings)
    except CliError as exc:
        print(f"cocalc-k8s: error: {exc}", file=sys.stderr)
        sys.exit(exc.code)
    except SettingsError as exc:
        print(f"cocalc-k8s: error: {exc.message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except StopRequested:
        log.info("stopped before start-up finished")
    except KeyboardInterrupt:  # a second Ctrl+C while shutting down
        sys.exit(130)
