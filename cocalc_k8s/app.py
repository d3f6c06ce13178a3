"""create_app(settings): the one place that wires every part of the hub together.

Start-up order (each a cleanup context, closed in reverse):
0. `init_isolation`: can projects be sandboxed here, and can they run the interpreter?
1. `services`: the database engine and the use cases on it;
2. `background`: the NOTIFY listener, the lifecycle leader lock, the culler;
3. `content_origin`: the proxy's listener for project content;
4. `ssh_server`: the SSH gateway (when `--ssh-port` is not 0);
5. the event-loop lag probe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.backends.base import ProjectBackend, ProjectSpec
from cocalc_k8s.backends.host_checks import HostCheck, check_host
from cocalc_k8s.backends.local import LocalBackend
from cocalc_k8s.core.content_origin import ContentOrigins
from cocalc_k8s.core.errors import NotFound
from cocalc_k8s.core.ratelimit import FailureWindow
from cocalc_k8s.core.settings import Settings
from cocalc_k8s.core.ssh_endpoint import SshEndpoint
from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.db.engine import create_hub_engine
from cocalc_k8s.db.leader import LIFECYCLE_LEADER, LeaderLock
from cocalc_k8s.db.notify import CREDENTIALS, PROJECT_ACCESS, Listener
from cocalc_k8s.keys import (
    ACCOUNTS,
    ACTIVITY,
    ADMIN,
    AGENTS,
    API_KEYS,
    CONNECTIONS,
    CONTENT_GATE,
    CONTENT_ORIGIN,
    CONTENT_ORIGINS,
    COPIES,
    CULLER,
    DISK_QUOTA,
    DOCUMENTS,
    ENGINE,
    FILES,
    HISTORY,
    HISTORY_RETENTION,
    ISOLATION,
    LIFECYCLE,
    LIVE_CONNECTIONS,
    METRICS,
    PROJECTS,
    SECRET_KEY,
    SERVER_REPORTS,
    SESSIONS,
    SETTINGS,
    SIGNUP_TOKENS,
    SITE_SETTINGS,
    SSH_HOST,
    SSH_KEYS,
    TEMPLATES,
    WATCHER,
)
from cocalc_k8s.proxy.access import AccessCache
from cocalc_k8s.proxy.gate import ContentGate
from cocalc_k8s.proxy.jupyter_identities import JupyterIdentities
from cocalc_k8s.proxy.limits import ClientLimits
from cocalc_k8s.proxy.protocol import serve as serve_content
from cocalc_k8s.proxy.upstream import UpstreamPool
from cocalc_k8s.realtime.server import REALTIME, RealtimeHub
from cocalc_k8s.services.accounts import AccountPolicy, AccountService
from cocalc_k8s.services.activity import ActivityRecorder
from cocalc_k8s.services.admin import AdminService
from cocalc_k8s.services.api_keys import ApiKeyService
from cocalc_k8s.services.connections import Connections
from cocalc_k8s.services.copies import CHANNEL as COPIES_CHANNEL
from cocalc_k8s.services.copies import CopyService
from cocalc_k8s.services.credential_status import CredentialStatus
from cocalc_k8s.services.culler import Culler
from cocalc_k8s.services.disk_quota import DiskQuota, enforcement
from cocalc_k8s.services.documents.presence import CHANNEL as PRESENCE_CHANNEL
from cocalc_k8s.services.documents.service import DocumentPolicy, DocumentService
from cocalc_k8s.services.documents.store import CHANNEL as DOCUMENTS_CHANNEL
from cocalc_k8s.services.files import ProjectFiles
from cocalc_k8s.services.history.retention import HistoryRetention, Retention
from cocalc_k8s.services.history.service import HistoryPolicy, HistoryService
from cocalc_k8s.services.history.store import HistoryStore
from cocalc_k8s.services.lifecycle import REQUESTS_CHANNEL, LifecycleManager
from cocalc_k8s.services.live_connections import LiveConnections
from cocalc_k8s.services.metrics import HubMetrics
from cocalc_k8s.services.principal_cache import PrincipalCache
from cocalc_k8s.services.projects import ProjectService
from cocalc_k8s.services.sessions import SessionService
from cocalc_k8s.services.signup_tokens import SignupTokens
from cocalc_k8s.services.site_settings import SITE_CHANNEL, SiteSettings
from cocalc_k8s.services.ssh_keys import SshKeyService
from cocalc_k8s.services.watcher import FileWatcher
from cocalc_k8s.share.routes import setup_share
from cocalc_k8s.ssh.gateway import GatewayParts, SshGateway
from cocalc_k8s.ssh.host_key import load_host_key
from cocalc_k8s.web.auth import authenticated_at, identify, principal_of
from cocalc_k8s.web.csrf import csrf_protect, trusted_origins
from cocalc_k8s.web.errors import handle_errors
from cocalc_k8s.web.headers import security_headers
from cocalc_k8s.web.metrics import loop_lag_probe, measure
from cocalc_k8s.web.routes import setup_routes
from cocalc_k8s.web.server_reports import ServerReports
from cocalc_k8s.web.templating import STATIC_DIR, create_environment

log = logging.getLogger(__name__)

MAX_REQUEST_BODY = 1024**2  # file uploads stream and are limited by max_file_mb instead


def load_secret_key(data_dir: Path) -> bytes:
    """The hub's HMAC key, generated once and kept (mode 0600) in the data directory."""
    path = data_dir / "secret_key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


def _bound(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0: a free port), not yet listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _account_policy(settings: Settings) -> AccountPolicy:
    return AccountPolicy(
        admin_email=settings.admin_email.lower() if settings.admin_email else None,
        first_account_admin=settings.first_account_admin,
        login_attempts=settings.login_attempts,
        login_window=settings.login_window,
    )


def log_host_check(found: HostCheck) -> None:
    """One clear line each, naming the cure, rather than a failure per project later."""
    isolation = found.isolation
    if isolation.sandboxed:
        log.info("project isolation: %s", isolation.summary())
    elif isolation.trusted_users:
        log.warning("project isolation: %s", isolation.summary())
    else:
        log.error("project isolation: %s", isolation.summary())
    if found.start_problem:
        log.error("no project can start: %s", found.start_problem)


def project_backend(settings: Settings, *, sandboxed: bool | None = None) -> ProjectBackend:
    """Where projects run: child processes (in sandboxes, when `sandboxed`), or pods
    (`--backend kubernetes`)."""
    if settings.backend != "kubernetes":
        return LocalBackend(log_dir=settings.data_dir / "logs" / "projects", sandbox=sandboxed)
    # Imported only here: the kubernetes client costs a noticeable start-up time.
    from cocalc_k8s.backends.kubernetes import KubernetesBackend
    from cocalc_k8s.k8s.cluster import ProjectCluster
    from cocalc_k8s.k8s.gateway import KubernetesGateway, api_client
    from cocalc_k8s.k8s.site_config import config_from_settings

    config = config_from_settings(settings)
    concurrency = settings.k8s_api_concurrency
    gateway = KubernetesGateway(
        api_client(settings.k8s_api_url, pool_size=concurrency + 2),
        namespace=config.namespace,
        concurrency=concurrency,
    )
    return KubernetesBackend(
        ProjectCluster(gateway, config),
        uid=config.uid,
        start_timeout=settings.k8s_start_timeout,
    )


def _refuse_all(reason: str) -> Callable[[ProjectSpec], Awaitable[str]]:
    async def refuse(spec: ProjectSpec) -> str:
        return reason

    return refuse


def create_app(
    settings: Settings,
    *,
    database_url: str,
    ssl_context: ssl.SSLContext | None = None,
    content_sockets: list[socket.socket] | None = None,
    ssh_sockets: list[socket.socket] | None = None,
) -> web.Application:
    """The hub application. The database must already be migrated (see cli.serve).
    `ssl_context` and `content_sockets` (bound beforehand) are for the content origin;
    `ssh_sockets` (bound beforehand) for the SSH server, else it binds `--ssh-port`."""
    app = web.Application(
        middlewares=[security_headers, handle_errors, measure, identify, csrf_protect],
        client_max_size=MAX_REQUEST_BODY,
    )
    app[SETTINGS] = settings
    app[SECRET_KEY] = load_secret_key(settings.data_dir)
    app[TEMPLATES] = create_environment()
    app[METRICS] = HubMetrics()
    projects_root = settings.data_dir / "projects"
    principals = PrincipalCache()
    app[CONNECTIONS] = Connections()
    app[METRICS].watch_connections(app[CONNECTIONS])

    host: HostCheck | None = None

    async def init_isolation(app: web.Application) -> AsyncIterator[None]:
        nonlocal host
        began = time.perf_counter()
        host = await check_host(settings)
        log.info("init_isolation done in %.0f ms", (time.perf_counter() - began) * 1000)
        log_host_check(host)
        app[ISOLATION] = host.isolation
        yield

    async def services(app: web.Application) -> AsyncIterator[None]:
        assert host is not None
        engine = create_hub_engine(database_url, pool_size=settings.db_pool_size)
        app[ENGINE] = engine
        app[METRICS].watch_pool(engine)
        app[SITE_SETTINGS] = SiteSettings(
            engine, allow_sign_up=settings.allow_sign_up, isolation=host.isolation
        )
        await app[SITE_SETTINGS].reload()
        app[ACCOUNTS] = AccountService(
            engine, _account_policy(settings), cache=principals, site=app[SITE_SETTINGS]
        )
        app[SIGNUP_TOKENS] = SignupTokens(engine)
        app[SESSIONS] = SessionService(
            engine, lifetime=timedelta(days=settings.session_days), cache=principals
        )
        app[API_KEYS] = ApiKeyService(engine, cache=principals)
        app[PROJECTS] = ProjectService(engine)
        app[SSH_KEYS] = SshKeyService(engine)
        credentials = CredentialStatus(app[SESSIONS], app[API_KEYS], ssh_keys=app[SSH_KEYS])
        app[LIVE_CONNECTIONS] = LiveConnections(
            credentials, app[PROJECTS], connections=app[CONNECTIONS]
        )
        app[FILES] = ProjectFiles(projects_root, max_file_bytes=settings.max_file_mb * 1024**2)
        app[ACTIVITY] = ActivityRecorder(engine)
        app[AGENTS] = AgentClient()
        app[ADMIN] = AdminService(engine, accounts=app[ACCOUNTS], connections=app[CONNECTIONS])
        backend = project_backend(settings, sandboxed=host.isolation.sandboxed)
        app[LIFECYCLE] = LifecycleManager(engine, backend, projects_root=projects_root)
        app[SERVER_REPORTS] = ServerReports(backend, app[AGENTS])
        if host.start_problem:
            app[LIFECYCLE].start_checks.append(_refuse_all(host.start_problem))
        app[CULLER] = Culler(engine, app[LIFECYCLE])
        app[DISK_QUOTA] = DiskQuota(
            engine,
            app[FILES].fs,
            app[LIFECYCLE],
            volume=settings.data_dir,
            reserve_bytes=settings.disk_reserve_mb * 1024 * 1024,
        )
        app[LIFECYCLE].start_checks.append(app[DISK_QUOTA].start_check)
        app[DISK_QUOTA].enforcement = await asyncio.to_thread(enforcement, settings.data_dir)
        log.info("%s", app[DISK_QUOTA].enforcement)
        app[COPIES] = CopyService(
            engine,
            app[FILES],
            app[PROJECTS],
            app[DISK_QUOTA],
            max_bytes=settings.copy_max_mb * 1024**2,
        )
        app[WATCHER] = FileWatcher(
            engine,
            backend,
            app[AGENTS],
            app[FILES],
            max_bytes=max(settings.document_max_mb * 1024**2, settings.history_max_kb * 1024),
        )
        app[DOCUMENTS] = DocumentService(
            engine,
            app[FILES],
            database_url=database_url,
            watcher=app[WATCHER],
            policy=DocumentPolicy(max_bytes=settings.document_max_mb * 1024**2),
        )
        app[HISTORY] = HistoryService(
            app[FILES],
            HistoryStore(engine),
            watcher=app[WATCHER],
            documents=app[DOCUMENTS],
            policy=HistoryPolicy(max_bytes=settings.history_max_kb * 1024),
        )
        app[HISTORY_RETENTION] = HistoryRetention(
            engine,
            Retention(after_days=settings.history_thin_after_days, bucket=settings.history_thin_to),
        )
        realtime.documents, realtime.projects = app[DOCUMENTS], app[PROJECTS]
        realtime.live = app[LIVE_CONNECTIONS]
        realtime.who.attach(app[DOCUMENTS].presence)
        yield
        await app[WATCHER].close()
        await app[DOCUMENTS].close()
        await app[HISTORY].close()
        await app[HISTORY_RETENTION].close()
        await app[COPIES].close()
        await app[CULLER].close()
        await app[DISK_QUOTA].close()
        await app[LIFECYCLE].close()
        await app[ACTIVITY].flush()
        await app[AGENTS].close()
        await app[SITE_SETTINGS].close()
        await engine.dispose()

    async def background(app: web.Application) -> AsyncIterator[None]:
        manager = app[LIFECYCLE]
        access = AccessCache(app[PROJECTS])
        identities = JupyterIdentities(app[SECRET_KEY], app[ACCOUNTS])
        live = app[LIVE_CONNECTIONS]
        listener = Listener(database_url)
        listener.subscribe(CREDENTIALS, principals.drop_account_id)
        listener.subscribe(CREDENTIALS, live.status.account_changed)
        listener.subscribe(REQUESTS_CHANNEL, manager.on_request_notification)
        listener.subscribe(PROJECT_ACCESS, access.members_changed)
        listener.subscribe(CREDENTIALS, access.account_changed)
        listener.subscribe(CREDENTIALS, identities.account_changed)
        listener.subscribe(CREDENTIALS, live.account_changed)
        listener.subscribe(PROJECT_ACCESS, live.members_changed)
        listener.subscribe(SITE_CHANNEL, app[SITE_SETTINGS].changed)
        listener.subscribe(COPIES_CHANNEL, app[COPIES].notified)
        listener.subscribe(DOCUMENTS_CHANNEL, app[DOCUMENTS].notified)
        listener.subscribe(PRESENCE_CHANNEL, app[DOCUMENTS].presence.notified)
        listener.on_connected(app[DOCUMENTS].presence.hello)
        listener.on_connected(app[DOCUMENTS].missed_notifications)
        listener.on_reset(principals.disable)
        listener.on_reset(live.status.forget)
        listener.on_reset(access.forget)
        listener.on_reset(identities.forget)
        listener.on_reset(live.missed_events)
        listener.on_connected(principals.enable)
        listener.on_connected(live.status.enable)
        listener.on_connected(live.recheck_all)
        listener.on_connected(manager.on_listening)
        listener.on_connected(app[SITE_SETTINGS].changed)  # it may have missed a change
        leader = LeaderLock(database_url, key=LIFECYCLE_LEADER)
        leader.on_change(manager.on_leadership)
        leader.on_change(app[CULLER].on_leadership)
        leader.on_change(app[DISK_QUOTA].on_leadership)
        leader.on_change(app[HISTORY_RETENTION].on_leadership)
        app[CONTENT_GATE] = ContentGate(
            secret=app[SECRET_KEY],
            hub_url=settings.public_url,
            # The content origin's own scheme (TLS here, or in front of the content port).
            secure_cookies=(settings.content_url or "").startswith("https:"),
            access=access,
            live=live,
            api_keys=app[API_KEYS],
            lifecycle=manager,
            activity=app[ACTIVITY],
            agents=app[AGENTS],
            identities=identities,
            history=app[HISTORY],
        )
        await listener.start()
        await leader.start()
        live.start()
        await app[DOCUMENTS].start()
        await app[WATCHER].start()
        await app[COPIES].start()
        if settings.admin_email:
            try:
                await app[ACCOUNTS].make_admin(settings.admin_email)
            except NotFound:  # no such account yet: sign-up makes it admin then
                log.info("admin email %s has no account yet", settings.admin_email)
        yield
        await live.close()
        await listener.stop()
        await leader.stop()

    async def content_origin(app: web.Application) -> AsyncIterator[None]:
        pool = UpstreamPool()
        servers = await serve_content(
            app[CONTENT_GATE],
            pool,
            settings.host,
            settings.content_port,
            ssl=ssl_context if settings.content_tls else None,
            sockets=content_sockets,
            limits=ClientLimits(
                max_head=settings.content_head_limit_kb * 1024,
                head_timeout=settings.content_head_timeout,
                idle_timeout=settings.content_idle_timeout,
                max_waiting=settings.content_waiting_limit,
                max_waiting_per_address=settings.content_waiting_per_address,
            ),
        )
        port = servers[0].sockets[0].getsockname()[1]
        app[CONTENT_ORIGIN] = settings.content_origin(port)
        app[CONTENT_ORIGINS] = app[CONTENT_GATE].origins = ContentOrigins(app[CONTENT_ORIGIN])
        if not app[CONTENT_ORIGINS].per_project:
            log.warning(
                "every project shares the content origin %s: there is NO protection between "
                "projects (a page of one project can act in every project its visitor can "
                "open); use it only if every user trusts every other, otherwise give "
                "--content-url https://*.DOMAIN (an origin per project)",
                app[CONTENT_ORIGIN],
            )
        yield
        for server in servers:
            server.close()
        pool.close()
        for server in servers:
            await server.wait_closed()

    async def ssh_server(app: web.Application) -> AsyncIterator[None]:
        if not settings.ssh_port and not ssh_sockets:
            yield
            return
        began = time.perf_counter()
        host_key = await asyncio.to_thread(load_host_key, settings.data_dir)
        attempts = settings.login_attempts * 5  # per address, as for sign-in
        gateway = SshGateway(
            GatewayParts(
                ssh_keys=app[SSH_KEYS],
                lifecycle=app[LIFECYCLE],
                agents=app[AGENTS],
                files=app[FILES],
                live=app[LIVE_CONNECTIONS],
                activity=app[ACTIVITY],
                disk_quota=app[DISK_QUOTA],
                failures=FailureWindow(limit=attempts, window=settings.login_window),
            )
        )
        sockets = ssh_sockets or [_bound(settings.host, settings.ssh_port)]
        await gateway.start(host_key=host_key, sockets=sockets)
        port = sockets[0].getsockname()[1]
        app[SSH_HOST] = SshEndpoint(port=port, fingerprint=host_key.get_fingerprint())
        log.info(
            "init_ssh done in %.0f ms: port %d, host key %s",
            (time.perf_counter() - began) * 1000,
            port,
            app[SSH_HOST].fingerprint,
        )
        yield
        await gateway.close()

    async def upload_sweeper(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(app[FILES].uploads.sweep_forever())
        yield
        await cancel(task)

    async def end_streams(app: web.Application) -> None:
        app[LIFECYCLE].end_streams()  # before aiohttp waits for open requests to finish
        await realtime.close()  # the same for sockets: clients reconnect to another hub

    app.cleanup_ctx.extend(
        [
            init_isolation,
            services,
            background,
            content_origin,
            ssh_server,
            upload_sweeper,
            loop_lag_probe,
        ]
    )
    app.on_shutdown.append(end_streams)
    # Attached before the routes freeze; its services arrive with the `services` context.
    realtime = app[REALTIME] = RealtimeHub(
        identify=principal_of, authenticated_at=authenticated_at, trusted_origins=trusted_origins
    )
    realtime.attach(app)
    setup_routes(app)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    setup_share(
        app, database_url=database_url
    )  # last: its vanity URLs are a catch-all of three path segments
    return app
