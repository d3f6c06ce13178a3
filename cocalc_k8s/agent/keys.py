"""Every shared resource of the agent's application, declared once."""

from __future__ import annotations

from aiohttp import web

from cocalc_k8s.agent.execution import CommandRunner
from cocalc_k8s.agent.named_servers import ServerRegistry
from cocalc_k8s.agent.settings import AgentSettings
from cocalc_k8s.agent.terminals import TerminalRegistry
from cocalc_k8s.agent.watch import HomeWatcher
from cocalc_k8s.core.projectfs import ProjectFS

SETTINGS = web.AppKey("settings", AgentSettings)
FS = web.AppKey("fs", ProjectFS)
TERMINALS = web.AppKey("terminals", TerminalRegistry)
COMMANDS = web.AppKey("commands", CommandRunner)
SERVERS = web.AppKey("servers", ServerRegistry)
WATCHER = web.AppKey("watcher", HomeWatcher)
