"""The hub's settings: one frozen dataclass, read once from the environment and the CLI.

Every field carries its help text, its `COCALC_*` environment variable and its CLI flag in
the field metadata; `docs/settings.md` documents each one and a test keeps the two in step.
Precedence: CLI flag, then environment variable, then the default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cocalc_k8s.core.content_origin import is_loopback, local_template, valid_template
from cocalc_k8s.core.errors import BadRequest

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
TLS_MODES = ("off", "files", "self-signed")
BACKENDS = ("local", "kubernetes")
K8S_STORAGE_MODES = ("nfs", "pvc")


def _setting(default: Any, help: str, *, env: str, flag: str, secret: bool = False) -> Any:
    return field(
        default=default,
        metadata={"help": help, "env": env, "flag": flag, "secret": secret},
    )


SYSTEM_DATA_DIR = Path("/var/lib/cocalc-k8s")


def user_data_dir() -> Path:
    """$XDG_DATA_HOME/cocalc-k8s: the default of a hub run by a normal user."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cocalc-k8s"


def default_data_dir() -> Path:
    """Where the hub keeps its data unless told: run as root, the FHS place
    (/var/lib/cocalc-k8s), so that nothing under /root needs a mode the hub would have to
    change for projects; a data directory at the old default (under /root) is still used.
    Otherwise the user's own data directory."""
    return pick_data_dir(is_root=os.geteuid() == 0, user_dir=user_data_dir())


def pick_data_dir(*, is_root: bool, user_dir: Path) -> Path:
    if not is_root or user_dir.is_dir():
        return user_dir
    return SYSTEM_DATA_DIR


def data_dir_notice(data_dir: Path, *, is_root: bool) -> str | None:
    """A line for the start-up log when a root hub keeps using the old default."""
    if not is_root or data_dir != user_data_dir().absolute():
        return None
    return (
        f"using the data directory of an earlier release, {data_dir}; the default as root is "
        f"now {SYSTEM_DATA_DIR} (move it there while the hub is stopped, or keep "
        "--data-dir)"
    )


class SettingsError(BadRequest):
    """A setting has an invalid value; the message names the setting."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str = _setting(
        "127.0.0.1",
        "Address the hub listens on. Use 0.0.0.0 to accept connections from other machines.",
        env="COCALC_HOST",
        flag="--host",
    )
    port: int = _setting(
        8080,
        "TCP port of the hub's web server (HTTP, or HTTPS when TLS is on).",
        env="COCALC_PORT",
        flag="--port",
    )
    data_dir: Path = _setting(
        None,
        "Directory for everything the hub keeps on disk: the embedded PostgreSQL, the secret "
        "key, the self-signed certificate, the project homes. Default: "
        "$XDG_DATA_HOME/cocalc-k8s (~/.local/share/cocalc-k8s); run as root, "
        "/var/lib/cocalc-k8s, unless a data directory from an earlier release exists at "
        "the first place (it is then still used).",
        env="COCALC_DATA_DIR",
        flag="--data-dir",
    )
    database_url: str | None = _setting(
        None,
        "PostgreSQL URL (postgresql://user:password@host:5432/dbname). When unset, the hub "
        "starts an embedded PostgreSQL server inside the data directory. DATABASE_URL is "
        "read too.",
        env="COCALC_DATABASE_URL",
        flag="--database-url",
        secret=True,
    )
    db_pool_size: int = _setting(
        10,
        "Number of pooled database connections the hub keeps open.",
        env="COCALC_DB_POOL_SIZE",
        flag="--db-pool-size",
    )
    base_url: str | None = _setting(
        None,
        "Public URL (scheme://host[:port]) users open, e.g. https://cocalc.example.org when "
        "the hub sits behind a load balancer. Used for the printed URL and for checking the "
        "Origin of state-changing requests. Default: derived from host, port and TLS.",
        env="COCALC_BASE_URL",
        flag="--base-url",
    )
    tls: str = _setting(
        "off",
        "TLS mode: 'off' (plain HTTP), 'files' (use --tls-cert and --tls-key) or "
        "'self-signed' (generate a certificate on first start and keep it in the data "
        "directory). Setting --tls-cert and --tls-key implies 'files'.",
        env="COCALC_TLS",
        flag="--tls",
    )
    tls_cert: Path | None = _setting(
        None,
        "PEM certificate chain for HTTPS.",
        env="COCALC_TLS_CERT",
        flag="--tls-cert",
    )
    tls_key: Path | None = _setting(
        None,
        "PEM private key for HTTPS.",
        env="COCALC_TLS_KEY",
        flag="--tls-key",
    )
    log_level: str = _setting(
        "info",
        "Log level: debug, info, warning or error.",
        env="COCALC_LOG_LEVEL",
        flag="--log-level",
    )
    log_format: str = _setting(
        "text",
        "Log format: 'text' (one readable line per event) or 'json' (one JSON object per "
        "line, for log collectors).",
        env="COCALC_LOG_FORMAT",
        flag="--log-format",
    )
    admin_email: str | None = _setting(
        None,
        "The account with this email is an admin: at sign-up, or at start-up if it exists. "
        "Nothing proves the owner of the address signed up, so only for a hub reachable "
        "from this machine alone (--host on loopback, no --base-url elsewhere); a hub "
        "reachable from other machines refuses it: sign up there, then run "
        "`cocalc-k8s make-admin EMAIL`.",
        env="COCALC_ADMIN_EMAIL",
        flag="--admin-email",
    )
    first_account_admin: bool = _setting(
        False,
        "Make the first account that signs up an admin (handy for the one-command run on "
        "this machine). Like --admin-email, refused by a hub reachable from other "
        "machines, where anyone could be first: use `cocalc-k8s make-admin EMAIL` there.",
        env="COCALC_FIRST_ACCOUNT_ADMIN",
        flag="--first-account-admin",
    )
    allow_sign_up: bool = _setting(
        True,
        "Let anyone who reaches the hub create an account. Turn off for closed installs. "
        "Only the default: once an admin chooses open, closed or by token on the admin "
        "page, that choice (stored in the database) wins.",
        env="COCALC_ALLOW_SIGN_UP",
        flag="--allow-sign-up",
    )
    session_days: int = _setting(
        30,
        "Lifetime of a sign-in session, in days.",
        env="COCALC_SESSION_DAYS",
        flag="--session-days",
    )
    login_attempts: int = _setting(
        10,
        "Failed sign-in attempts allowed per account within the rate-limit window; five "
        "times as many per client address. Further attempts get 429.",
        env="COCALC_LOGIN_ATTEMPTS",
        flag="--login-attempts",
    )
    login_window: int = _setting(
        900,
        "Length of the sign-in rate-limit window, in seconds.",
        env="COCALC_LOGIN_WINDOW",
        flag="--login-window",
    )
    metrics_port: int = _setting(
        0,
        "When non-zero, serve Prometheus metrics without authentication on this port (bound "
        "to --metrics-host). /metrics on the hub's own port is always available to admins.",
        env="COCALC_METRICS_PORT",
        flag="--metrics-port",
    )
    metrics_host: str = _setting(
        "127.0.0.1",
        "Address of the separate metrics listener.",
        env="COCALC_METRICS_HOST",
        flag="--metrics-host",
    )
    content_port: int = _setting(
        8081,
        "TCP port of the content origin: everything a project serves (its web servers through "
        "the proxy, raw files) is served here and never on the hub's own origin, so a "
        "project's pages cannot act as the user who opens them. 0 picks a free port.",
        env="COCALC_CONTENT_PORT",
        flag="--content-port",
    )
    ssh_port: int = _setting(
        2222,
        "TCP port of the SSH server (ssh, scp, sftp and rsync into projects with the keys "
        "users add to their account or to a project; log in as PROJECT_ID, or its first 8 "
        "hex digits). It listens on --host; its host key is generated once in the data "
        "directory. Passwords are never accepted. 0 turns the SSH server off.",
        env="COCALC_SSH_PORT",
        flag="--ssh-port",
    )
    content_url: str | None = _setting(
        None,
        "Public URL of project content. With a wildcard host, https://*.projects.example.org, "
        "each project gets an origin of its own (https://PROJECT_ID.projects.example.org; "
        "needs wildcard DNS and a wildcard certificate), and browsers keep projects apart. "
        "A single host, e.g. https://projects.example.org, makes every project share one "
        "origin: that gives NO protection between projects (a page of one project can act "
        "in every other project its visitor can open), so use it only when every user "
        "trusts every other; the hub logs a warning at start. Default, for a hub reached on "
        "this machine: http://*.localhost:CONTENT_PORT (browsers resolve every *.localhost "
        "name to this machine). A hub reached under another name needs this setting. The "
        "content port speaks TLS (the hub's certificate) when this URL is https.",
        env="COCALC_CONTENT_URL",
        flag="--content-url",
    )
    redirect_port: int = _setting(
        0,
        "When non-zero and TLS is on, also listen on this port with plain HTTP and redirect "
        "every request to the HTTPS URL (e.g. port 80 of a load balancer).",
        env="COCALC_REDIRECT_PORT",
        flag="--redirect-port",
    )
    max_file_mb: int = _setting(
        1024,
        "Largest file, in MB, that can be uploaded or saved into a project through the hub. "
        "Larger uploads get 413 and leave the old file intact.",
        env="COCALC_MAX_FILE_MB",
        flag="--max-file-mb",
    )
    copy_max_mb: int = _setting(
        10240,
        "Largest copy between projects, in MB (a file or a whole folder): a larger one fails "
        "before anything is written. The destination's disk quota applies too.",
        env="COCALC_COPY_MAX_MB",
        flag="--copy-max-mb",
    )
    document_max_mb: int = _setting(
        10,
        "Largest text file, in MB, that opens as a shared document in the collaborative "
        "editor. Larger files, and binary files, open read-only.",
        env="COCALC_DOCUMENT_MAX_MB",
        flag="--document-max-mb",
    )
    history_max_kb: int = _setting(
        1024,
        "Largest text file, in KB, whose versions TimeTravel keeps (every change, however "
        "it was made). Larger files, and binary files, get no history.",
        env="COCALC_HISTORY_MAX_KB",
        flag="--history-max-kb",
    )
    history_thin_after_days: int = _setting(
        0,
        "Thin TimeTravel: versions older than this many days keep only the last of each "
        "hour (or day, see --history-thin-to); newer versions, and the newest version of "
        "every file, are always kept. 0 keeps every version.",
        env="COCALC_HISTORY_THIN_AFTER_DAYS",
        flag="--history-thin-after-days",
    )
    history_thin_to: str = _setting(
        "hour",
        "What thinning keeps of old versions: 'hour' (the last version of each hour) or 'day'.",
        env="COCALC_HISTORY_THIN_TO",
        flag="--history-thin-to",
    )
    disk_reserve_mb: int = _setting(
        1024,
        "Free space, in MB, kept on the volume of the data directory (where the embedded "
        "PostgreSQL and the project homes live): hub-side writes that would leave less are "
        "refused (507), and while less is free every running project that keeps writing is "
        "stopped.",
        env="COCALC_DISK_RESERVE_MB",
        flag="--disk-reserve-mb",
    )
    content_head_limit_kb: int = _setting(
        64,
        "Largest request head (request line and headers), in KiB, the content origin "
        "accepts; a larger one gets 431 and the connection is closed.",
        env="COCALC_CONTENT_HEAD_LIMIT_KB",
        flag="--content-head-limit-kb",
    )
    content_head_timeout: int = _setting(
        30,
        "Seconds a client may take to send a request head to the content origin, from its "
        "first byte; then 408 and the connection is closed (slow-loris clients).",
        env="COCALC_CONTENT_HEAD_TIMEOUT",
        flag="--content-head-timeout",
    )
    content_idle_timeout: int = _setting(
        60,
        "Seconds a keep-alive connection to the content origin is kept open without a request.",
        env="COCALC_CONTENT_IDLE_TIMEOUT",
        flag="--content-idle-timeout",
    )
    content_waiting_limit: int = _setting(
        4096,
        "Connections to the content origin that may wait for a request head at once (idle "
        "keep-alive ones included); beyond it the one that has waited longest is closed, so "
        "a flood of slow or silent connections cannot lock anyone out.",
        env="COCALC_CONTENT_WAITING_LIMIT",
        flag="--content-waiting-limit",
    )
    content_waiting_per_address: int = _setting(
        256,
        "The same bound for the connections of one client address; loopback clients "
        "(kubectl port-forward, the one-command run) are not counted per address. Set 0 "
        "behind a load balancer that hides client addresses.",
        env="COCALC_CONTENT_WAITING_PER_ADDRESS",
        flag="--content-waiting-per-address",
    )
    backend: str = _setting(
        "local",
        "Where projects run: 'local' (each project is a child process of the hub, for one "
        "machine and trusted users) or 'kubernetes' (one pod per project, in the namespace "
        "--k8s-namespace).",
        env="COCALC_BACKEND",
        flag="--backend",
    )
    trusted_users: bool = _setting(
        False,
        "The hub's users trust each other. Needed for more than one account where projects "
        "cannot be sandboxed (bubblewrap missing, or no unprivileged user namespaces): "
        "projects then run unsandboxed and can read each other's files and the hub's "
        "secrets. Without it such a hub serves one account: sign-up closes once the first "
        "account exists.",
        env="COCALC_TRUSTED_USERS",
        flag="--trusted-users",
    )
    k8s_api_url: str | None = _setting(
        None,
        "URL of the Kubernetes API server, without credentials (for development and tests). "
        "Default: the in-cluster service account, else ~/.kube/config.",
        env="COCALC_K8S_API_URL",
        flag="--k8s-api-url",
    )
    k8s_namespace: str = _setting(
        "cocalc-projects",
        "Namespace of the project pods, their token Secrets and the homes' claim: not the "
        "hub's, so that the API server can enforce the 'restricted' Pod Security level on "
        "it (deployment.yaml creates it).",
        env="COCALC_K8S_NAMESPACE",
        flag="--k8s-namespace",
    )
    k8s_hub_namespace: str = _setting(
        "cocalc",
        "Namespace of the hub and its NFS Service (deployment.yaml passes the hub pod's own).",
        env="COCALC_K8S_HUB_NAMESPACE",
        flag="--k8s-hub-namespace",
    )
    k8s_project_image: str = _setting(
        "cocalc-k8s-project",
        "Repository of the project image (the Dockerfile's 'project' target), without tag.",
        env="COCALC_K8S_PROJECT_IMAGE",
        flag="--k8s-project-image",
    )
    k8s_project_tag: str = _setting(
        "0.1.0",
        "Tag of the project image; also the project_tag label of every project pod.",
        env="COCALC_K8S_PROJECT_TAG",
        flag="--k8s-project-tag",
    )
    k8s_image_pull_policy: str = _setting(
        "IfNotPresent",
        "imagePullPolicy of project pods: IfNotPresent, Always or Never.",
        env="COCALC_K8S_IMAGE_PULL_POLICY",
        flag="--k8s-image-pull-policy",
    )
    k8s_image_pull_secrets: str = _setting(
        "",
        "Comma-separated names of docker-registry Secrets in --k8s-namespace (the projects'), "
        "for a private registry.",
        env="COCALC_K8S_IMAGE_PULL_SECRETS",
        flag="--k8s-image-pull-secrets",
    )
    k8s_storage: str = _setting(
        "nfs",
        "Where project homes live: 'nfs' (the hub pod's NFS export, reached through "
        "--k8s-nfs-service; the hub creates its PersistentVolume, bound to the claim "
        "--k8s-projects-claim of deployment.yaml) or 'pvc' (your own ReadWriteMany claim "
        "--k8s-projects-claim). Pods mount the claim with subPath projects/<project_id>.",
        env="COCALC_K8S_STORAGE",
        flag="--k8s-storage",
    )
    k8s_nfs_service: str = _setting(
        "cocalc-nfs",
        "Name of the NFS Service in --k8s-hub-namespace; the export's PersistentVolume "
        "names its cluster IP, looked up once.",
        env="COCALC_K8S_NFS_SERVICE",
        flag="--k8s-nfs-service",
    )
    k8s_nfs_server: str | None = _setting(
        None,
        "Address of the NFS server project pods mount, instead of the NFS Service's cluster IP.",
        env="COCALC_K8S_NFS_SERVER",
        flag="--k8s-nfs-server",
    )
    k8s_projects_claim: str = _setting(
        "cocalc-projects",
        "ReadWriteMany PersistentVolumeClaim in --k8s-namespace holding projects/ and ext/ "
        "(with storage 'nfs', the one deployment.yaml binds to the export's volume).",
        env="COCALC_K8S_PROJECTS_CLAIM",
        flag="--k8s-projects-claim",
    )
    k8s_node_selector: str = _setting(
        "",
        "Node labels project pods must match, as key=value pairs separated by commas, e.g. "
        "cocalc-role=projects.",
        env="COCALC_K8S_NODE_SELECTOR",
        flag="--k8s-node-selector",
    )
    k8s_tolerations: str = _setting(
        "",
        "Tolerations of project pods, as key[=value]:Effect separated by commas, e.g. "
        "cocalc-role=projects:NoSchedule.",
        env="COCALC_K8S_TOLERATIONS",
        flag="--k8s-tolerations",
    )
    k8s_project_uid: int = _setting(
        2001,
        "User id (and group id) of every process in a project pod; owner of the homes.",
        env="COCALC_K8S_PROJECT_UID",
        flag="--k8s-project-uid",
    )
    k8s_start_timeout: int = _setting(
        300,
        "Seconds a project pod may take from creation to an answering agent (image pull "
        "and scheduling included) before its start fails.",
        env="COCALC_K8S_START_TIMEOUT",
        flag="--k8s-start-timeout",
    )
    k8s_api_concurrency: int = _setting(
        8,
        "Kubernetes API calls the hub makes at once at most (the client is synchronous and "
        "runs in this many threads).",
        env="COCALC_K8S_API_CONCURRENCY",
        flag="--k8s-api-concurrency",
    )

    def __post_init__(self) -> None:
        # Absolute, because the embedded PostgreSQL resolves relative paths from its pgdata.
        data_dir = default_data_dir() if self.data_dir is None else self.data_dir
        object.__setattr__(self, "data_dir", Path(data_dir).expanduser().absolute())
        if self.tls == "off" and self.tls_cert and self.tls_key:
            object.__setattr__(self, "tls", "files")
        _validate(self)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'<hidden>' if f.metadata['secret'] and value else repr(value)}"
            for f in setting_fields()
            for value in [getattr(self, f.name)]
        )
        return f"Settings({shown})"

    @property
    def scheme(self) -> str:
        return "http" if self.tls == "off" else "https"

    @property
    def public_url(self) -> str:
        """The URL printed for users and used as the trusted Origin."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - describing, not binding
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    def content_origin(self, bound_port: int) -> str:
        """The content URL template (see `core.content_origin`), given the port the
        content origin actually listens on."""
        if self.content_url:
            return self.content_url.rstrip("/")
        return local_template(bound_port)

    @property
    def content_tls(self) -> bool:
        """Whether the content port speaks TLS: only for an https content URL (the default
        `*.localhost` one is plain HTTP: loopback traffic, and a self-signed certificate
        would need a browser exception per project host)."""
        return self.tls != "off" and (self.content_url or "").startswith("https:")

    @property
    def local_only(self) -> bool:
        """Whether only this machine can reach the hub: it listens on a loopback address
        and no --base-url names another host (a reverse proxy in front would make it
        public). A host name other than localhost counts as reachable."""
        hosts = [self.host]
        if self.base_url:
            hosts.append(urlsplit(self.base_url).hostname or "")
        return all(_is_loopback(host) for host in hosts)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _validate(s: Settings) -> None:
    if not 0 < s.port < 65536:
        raise SettingsError(f"--port must be between 1 and 65535, not {s.port}")
    if not 0 <= s.content_port < 65536:
        raise SettingsError(f"--content-port must be between 0 and 65535, not {s.content_port}")
    if s.content_port and s.content_port == s.port:
        raise SettingsError("--content-port must differ from --port: it is a separate origin")
    if s.content_url is not None and not valid_template(s.content_url):
        raise SettingsError(
            "--content-url must look like https://host[:port] or https://*.domain[:port]"
        )
    if not 0 <= s.ssh_port < 65536:
        raise SettingsError(f"--ssh-port must be between 0 and 65535, not {s.ssh_port}")
    if s.ssh_port and s.ssh_port in (s.port, s.content_port):
        raise SettingsError("--ssh-port must differ from --port and --content-port")
    if not 0 <= s.redirect_port < 65536:
        raise SettingsError(f"--redirect-port must be between 0 and 65535, not {s.redirect_port}")
    if not 0 <= s.metrics_port < 65536:
        raise SettingsError(f"--metrics-port must be between 0 and 65535, not {s.metrics_port}")
    if s.log_level not in LOG_LEVELS:
        raise SettingsError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    if s.log_format not in LOG_FORMATS:
        raise SettingsError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
    if s.tls not in TLS_MODES:
        raise SettingsError(f"--tls must be one of {', '.join(TLS_MODES)}")
    if s.tls == "files" and not (s.tls_cert and s.tls_key):
        raise SettingsError("--tls files needs both --tls-cert and --tls-key")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise SettingsError("--tls-cert and --tls-key must be given together")
    if s.database_url is not None and urlsplit(s.database_url).scheme not in (
        "postgresql",
        "postgres",
        "postgresql+psycopg",
    ):
        raise SettingsError("--database-url must be a postgresql:// URL")
    if s.base_url is not None:
        parts = urlsplit(s.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError("--base-url must look like https://host[:port]")
        if parts.path not in ("", "/"):
            raise SettingsError(
                "--base-url must not have a path: serving under a prefix is not supported"
            )
    if s.history_thin_after_days < 0:
        raise SettingsError("--history-thin-after-days must be 0 (keep everything) or more")
    if s.history_thin_to not in ("hour", "day"):
        raise SettingsError("--history-thin-to must be 'hour' or 'day'")
    if s.backend not in BACKENDS:
        raise SettingsError(f"--backend must be one of {', '.join(BACKENDS)}")
    if s.k8s_storage not in K8S_STORAGE_MODES:
        raise SettingsError(f"--k8s-storage must be one of {', '.join(K8S_STORAGE_MODES)}")
    if s.k8s_image_pull_policy not in ("IfNotPresent", "Always", "Never"):
        raise SettingsError("--k8s-image-pull-policy must be IfNotPresent, Always or Never")
    if s.k8s_api_url is not None and urlsplit(s.k8s_api_url).scheme not in ("http", "https"):
        raise SettingsError("--k8s-api-url must be an http:// or https:// URL")
    for name in ("k8s_project_uid", "k8s_start_timeout", "k8s_api_concurrency"):
        if getattr(s, name) < 1:
            raise SettingsError(f"--{name.replace('_', '-')} must be at least 1")
    for name in (
        "session_days",
        "login_attempts",
        "login_window",
        "db_pool_size",
        "max_file_mb",
        "copy_max_mb",
        "document_max_mb",
        "history_max_kb",
    ):
        if getattr(s, name) < 1:
            raise SettingsError(f"--{name.replace('_', '-')} must be at least 1")
    for name in (
        "content_head_limit_kb",
        "content_head_timeout",
        "content_idle_timeout",
        "content_waiting_limit",
    ):
        if getattr(s, name) < 1:
            raise SettingsError(f"--{name.replace('_', '-')} must be at least 1")
    if s.content_waiting_per_address < 0:
        raise SettingsError("--content-waiting-per-address must be 0 (no bound) or more")
    _validate_admin_bootstrap(s)
    if s.content_url is None and not is_loopback(urlsplit(s.public_url).hostname):
        raise SettingsError(
            f"--content-url is needed for a hub reached as {s.public_url}: the default "
            "(http://*.localhost) only reaches this machine. Give https://*.projects.DOMAIN "
            "(an origin per project; wildcard DNS and certificate) or, only if every user "
            "trusts every other, one host shared by all projects"
        )


def _validate_admin_bootstrap(s: Settings) -> None:
    """Whoever signs up first (as the admin email, or at all) would become an admin: fine
    on a hub only this machine reaches, a race anyone can win on one reachable from
    others."""
    given = [("--admin-email", s.admin_email), ("--first-account-admin", s.first_account_admin)]
    flags = [flag for flag, value in given if value]
    if not flags or s.local_only:
        return
    where = f"--host {s.host}" + (f", --base-url {s.base_url}" if s.base_url else "")
    raise SettingsError(
        f"{' and '.join(flags)} would make whoever signs up first an admin, and this hub is "
        f"reachable from other machines ({where}); it is only for a hub on loopback. Sign "
        "up, then run "
        "`cocalc-k8s make-admin EMAIL` on the hub's machine"
    )


def setting_fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Settings))


def _field_type(f: dataclasses.Field[Any]) -> str:
    return str(f.type).replace(" ", "")


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    """Turn the text of an environment variable or flag into the field's type."""
    kind = _field_type(f)
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{f.metadata['flag']} must be true or false, not {raw!r}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{f.metadata['flag']} must be a number, not {raw!r}") from None
    if "Path" in kind:
        return Path(raw).expanduser() if raw else None
    if not raw and "None" in kind:
        return None  # an empty variable unsets an optional setting
    return raw


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from the environment, then `overrides` (the parsed CLI flags) on top."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if environ.get("DATABASE_URL"):
        values["database_url"] = environ["DATABASE_URL"]
    for f in setting_fields():
        env = f.metadata["env"]
        if env in environ:
            values[f.name] = parse_value(f, environ[env])
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return Settings(**values)
