"""The project backend interface. Everything above it (the lifecycle manager, the API) is
shared by the local backend (child processes) and the Kubernetes backend (pods)."""

from __future__ import annotations

import hashlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocalc_k8s.core.quotas import DefaultQuotas, Quota

# (message, percent): a step of a start, shown to the user as it happens.
Progress = Callable[[str, int], None]
# (project_id, reason): a project stopped without being asked to (crash, OOM, node loss).
ExitCallback = Callable[[uuid.UUID, str], None]


class BackendError(Exception):
    """A project could not be started or stopped; the message is shown to its users."""


@dataclass(frozen=True, slots=True)
class ProjectSpec:
    project_id: uuid.UUID
    home: Path
    quota: Quota
    uid: int | None = None
    """The project's own user id (local backend, hub running as root), stored once."""
    cpu_oc: float = DefaultQuotas.cpu_oc
    """The site's CPU over-commit: a pod's CPU request is its limit divided by this."""
    mem_oc: float = DefaultQuotas.mem_oc
    """The site's memory over-commit."""
    resolved: Mapping[str, Any] = field(default_factory=dict)
    """Names resolved at an earlier start (pod, volume paths), kept whatever the scheme."""


@dataclass(frozen=True, slots=True)
class AgentAddress:
    """Where the project's agent listens, and the secret token it demands: host:port (a
    pod), or Unix sockets of the hub's (a sandboxed local project, whose loopback is its
    own): `unix` for the agent's API, `connect` for its connect service, through which
    the hub reaches the project's ports (`cocalc_k8s.backends.agent_connect`)."""

    host: str
    port: int
    token: str = ""
    unix: str = ""
    connect: str = ""

    @property
    def url(self) -> str:
        if self.unix:
            # A name of its own per socket, so that connection pools keep projects apart;
            # `agent_client.AgentConnector` maps it back to the socket.
            return f"http://{unix_host(self.unix)}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __repr__(self) -> str:  # the token never reaches a log
        where = self.unix or f"{self.host}:{self.port}"
        return f"AgentAddress({where})"


def unix_host(path: str) -> str:
    """The host name that stands for the Unix socket `path` in an agent URL."""
    return "agent-" + hashlib.blake2b(path.encode(), digest_size=12).hexdigest() + ".invalid"


class ProjectBackend(ABC):
    #: Whether projects get a uid of their own from the lifecycle manager (`ProjectSpec.uid`).
    wants_uid = False
    #: Whether projects keep running when the hub stops (pods), to be adopted on restart.
    outlives_hub = False

    def __init__(self) -> None:
        self._exit_callbacks: list[ExitCallback] = []

    def on_exit(self, callback: ExitCallback) -> None:
        self._exit_callbacks.append(callback)

    def _exited(self, project_id: uuid.UUID, reason: str) -> None:
        for callback in self._exit_callbacks:
            callback(project_id, reason)

    async def serves_port(self, project_id: uuid.UUID, port: int) -> bool:
        """False when something other than the project listens on `port` at its address.
        (Pods have addresses of their own: whatever answers there is the project's.)"""
        return True

    def resolved(self, project_id: uuid.UUID) -> Mapping[str, Any]:
        """Names this backend resolved for the project at its last start, to store."""
        return {}

    @property
    def image_tag(self) -> str | None:
        """The project image tag the next start uses; None where projects have no image
        (the local backend)."""
        return None

    def running_image_tags(self) -> dict[uuid.UUID, str]:
        """The image tag each running project was started with (none without images)."""
        return {}

    @abstractmethod
    async def start(self, spec: ProjectSpec, progress: Progress) -> AgentAddress:
        """Start the project and return once its agent answers. Raises BackendError."""

    @abstractmethod
    async def stop(self, project_id: uuid.UUID) -> None:
        """Stop the project; stopping a stopped project does nothing."""

    @abstractmethod
    def address(self, project_id: uuid.UUID) -> AgentAddress | None:
        """The running agent's address, or None."""

    @abstractmethod
    async def running(self) -> set[uuid.UUID]:
        """Projects that run now (to adopt after a hub restart)."""

    @abstractmethod
    async def close(self) -> None:
        """The hub is stopping."""
