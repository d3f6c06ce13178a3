"""Every shared resource of the hub application, as a typed aiohttp AppKey."""

from __future__ import annotations

import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.core.content_origin import ContentOrigins
from cocalc_k8s.core.isolation import Isolation
from cocalc_k8s.core.settings import Settings
from cocalc_k8s.core.ssh_endpoint import SshEndpoint
from cocalc_k8s.proxy.gate import ContentGate
from cocalc_k8s.services.accounts import AccountService
from cocalc_k8s.services.activity import ActivityRecorder
from cocalc_k8s.services.admin import AdminService
from cocalc_k8s.services.api_keys import ApiKeyService
from cocalc_k8s.services.connections import Connections
from cocalc_k8s.services.copies import CopyService
from cocalc_k8s.services.culler import Culler
from cocalc_k8s.services.disk_quota import DiskQuota
from cocalc_k8s.services.documents.service import DocumentService
from cocalc_k8s.services.files import ProjectFiles
from cocalc_k8s.services.history.retention import HistoryRetention
from cocalc_k8s.services.history.service import HistoryService
from cocalc_k8s.services.lifecycle import LifecycleManager
from cocalc_k8s.services.live_connections import LiveConnections
from cocalc_k8s.services.metrics import HubMetrics
from cocalc_k8s.services.projects import ProjectService
from cocalc_k8s.services.sessions import SessionService
from cocalc_k8s.services.signup_tokens import SignupTokens
from cocalc_k8s.services.site_settings import SiteSettings
from cocalc_k8s.services.ssh_keys import SshKeyService
from cocalc_k8s.services.watcher import FileWatcher
from cocalc_k8s.web.server_reports import ServerReports

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SECRET_KEY = web.AppKey("secret_key", bytes)
ACCOUNTS = web.AppKey("accounts", AccountService)
SESSIONS = web.AppKey("sessions", SessionService)
API_KEYS = web.AppKey("api_keys", ApiKeyService)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
METRICS = web.AppKey("metrics", HubMetrics)
PROJECTS = web.AppKey("projects", ProjectService)
LIFECYCLE = web.AppKey("lifecycle", LifecycleManager)
FILES = web.AppKey("files", ProjectFiles)
ACTIVITY = web.AppKey("activity", ActivityRecorder)
AGENTS = web.AppKey("agents", AgentClient)
SERVER_REPORTS = web.AppKey("server_reports", ServerReports)
CULLER = web.AppKey("culler", Culler)
SITE_SETTINGS = web.AppKey("site_settings", SiteSettings)
CONTENT_ORIGIN = web.AppKey("content_origin", str)  # the content origin's URL, once bound
# The same, per project: one shared origin, or one per project (a wildcard content URL).
CONTENT_ORIGINS = web.AppKey("content_origins", ContentOrigins)
CONTENT_GATE = web.AppKey("content_gate", ContentGate)
ADMIN = web.AppKey("admin", AdminService)
CONNECTIONS = web.AppKey("connections", Connections)  # admin: open long-lived connections
# Every long-lived connection, closed when what authorised it is revoked.
LIVE_CONNECTIONS = web.AppKey("live_connections", LiveConnections)
SIGNUP_TOKENS = web.AppKey("signup_tokens", SignupTokens)  # admin: sign-up by token
DOCUMENTS = web.AppKey("documents", DocumentService)  # collaborative documents in memory
WATCHER = web.AppKey("watcher", FileWatcher)  # which project files changed (agents' inotify)
HISTORY = web.AppKey("history", HistoryService)  # TimeTravel: every version of text files
HISTORY_RETENTION = web.AppKey("history_retention", HistoryRetention)  # thinning old versions
ISOLATION = web.AppKey("isolation", Isolation)  # how projects are kept apart (start-up check)
DISK_QUOTA = web.AppKey("disk_quota", DiskQuota)  # per-project disk accounting
COPIES = web.AppKey("copies", CopyService)  # copies between projects
SSH_KEYS = web.AppKey("ssh_keys", SshKeyService)  # SSH public keys of accounts and projects
SSH_HOST = web.AppKey("ssh_host", SshEndpoint)  # where the SSH server listens (absent: off)
