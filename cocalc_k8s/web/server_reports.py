"""Which named servers (JupyterLab, Jupyter Notebook, VS Code) a project can run, as its
agent reports them (``GET /servers``, see `cocalc_k8s.agent.named_servers`), so that the
project page links only to servers that can work.

The last report of each project is kept in memory: a stopped project's page shows what
its environment offered when it last ran. A project not seen running since the hub
started is assumed to have the project environment the hub installs (JupyterLab and the
Notebook interface; code-server is optional, so not shown until reported).
"""

from __future__ import annotations

import uuid
from typing import Any

from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.backends.base import ProjectBackend
from cocalc_k8s.core.errors import DomainError

NAMES = ("jupyterlab", "jupyter", "code")
ASSUMED = {"jupyterlab": True, "jupyter": True, "code": False}
MAX_PROJECTS = 100_000


class ServerReports:
    def __init__(self, backend: ProjectBackend, agents: AgentClient) -> None:
        self.backend = backend
        self.agents = agents
        self._last: dict[uuid.UUID, list[dict[str, Any]]] = {}

    def known(self, project_id: uuid.UUID) -> list[dict[str, Any]]:
        """The last report, or the assumption (``"reported": false``), without asking."""
        last = self._last.get(project_id)
        if last is not None:
            return last
        return [
            {"name": name, "available": ASSUMED[name], "reason": None, "reported": False}
            for name in NAMES
        ]

    async def current(self, project_id: uuid.UUID) -> list[dict[str, Any]]:
        """What the running project's agent says now (kept), else `known`."""
        address = self.backend.address(project_id)
        if address is None:
            return self.known(project_id)
        try:
            answer = await self.agents.call(address, "GET", "/servers", seconds=10)
        except DomainError:  # an agent of an older release, or one going away
            return self.known(project_id)
        by_name = {
            entry.get("name"): entry
            for entry in (answer or {}).get("servers", [])
            if isinstance(entry, dict)
        }
        report = [
            {
                "name": name,
                "available": bool(by_name.get(name, {}).get("available")),
                "reason": by_name.get(name, {}).get("reason"),
                "reported": True,
            }
            for name in NAMES
        ]
        if len(self._last) >= MAX_PROJECTS:
            self._last.clear()
        self._last[project_id] = report
        return report
