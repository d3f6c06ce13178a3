"""What a project pod's status means for its project (pure: a pod dict in, a PodStatus out).

    deletionTimestamp set                          -> stopping
    Pending, image cannot be pulled                -> failed  ("the project image ... ")
    Pending, container cannot be created           -> failed
    Pending otherwise (unschedulable included)     -> starting (with the reason, if any)
    Running, Ready condition True                  -> running
    Running otherwise                              -> starting
    Succeeded                                      -> stopped
    Failed (OOMKilled, crash, eviction)            -> failed  (with the reason)
    Unknown (the node stopped reporting)           -> failed

Unschedulable stays `starting`: a cluster autoscaler may be adding a node; the backend's
start timeout turns it into a failure that names the reason. ErrImagePull stays `starting`
(one retry); the back-off that follows is taken as final.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

AGENT_PORT_ANNOTATION = "cocalc.io/agent-port"
"""Overrides the agent's port (tests and development, where agents share one address)."""

_IMAGE_ERRORS = ("ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_CREATE_ERRORS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")


@dataclass(frozen=True, slots=True)
class PodStatus:
    project_id: uuid.UUID
    state: str
    """starting, running, stopping, stopped or failed."""
    reason: str | None = None
    """Why it failed, or what a start waits for; shown to the project's users."""
    ip: str | None = None
    port: int = 0
    """The agent's port (the annotation, else the configured one)."""
    image_tag: str | None = None
    """The project image's tag the pod runs (its `project_tag` label)."""


def pod_status(pod: dict[str, Any], *, agent_port: int) -> PodStatus | None:
    """None when the pod is not a project pod (no valid project_id label)."""
    metadata = pod.get("metadata") or {}
    try:
        project_id = uuid.UUID((metadata.get("labels") or {}).get("project_id", ""))
    except ValueError:
        return None
    status = pod.get("status") or {}
    state, reason = _state(metadata, status)
    port = agent_port
    annotated = (metadata.get("annotations") or {}).get(AGENT_PORT_ANNOTATION, "")
    if annotated.isdigit() and 0 < int(annotated) < 65536:
        port = int(annotated)
    tag = (metadata.get("labels") or {}).get("project_tag") or None
    return PodStatus(project_id, state, reason, status.get("podIP") or None, port, tag)


def _state(metadata: dict[str, Any], status: dict[str, Any]) -> tuple[str, str | None]:
    if metadata.get("deletionTimestamp"):
        return "stopping", "the project's pod was deleted"
    phase = status.get("phase") or "Pending"
    containers = status.get("containerStatuses") or []
    if phase == "Succeeded":
        return "stopped", "the project's agent exited"
    if phase == "Failed":
        return "failed", _termination(containers) or _message(status, "the project's pod failed")
    if phase == "Unknown":
        return "failed", "the project's node stopped responding"
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        why = waiting.get("reason", "")
        if why in _IMAGE_ERRORS:
            detail = waiting.get("message") or why
            return "failed", f"the project image could not be pulled ({why}): {detail}"
        if why in _CREATE_ERRORS:
            detail = waiting.get("message") or why
            return "failed", f"the project's container could not start ({why}): {detail}"
        if (container.get("state") or {}).get("terminated"):
            return "stopping", _termination([container])
    if phase == "Running" and _condition(status, "Ready")[0] == "True":
        return "running", None
    scheduled = _condition(status, "PodScheduled")
    if scheduled[0] == "False":
        return "starting", f"waiting for a node: {scheduled[1] or 'unschedulable'}"
    return "starting", None


def _termination(containers: list[dict[str, Any]]) -> str | None:
    for container in containers:
        done = (container.get("state") or {}).get("terminated")
        if not done:
            continue
        if done.get("reason") == "OOMKilled":
            return "the project ran out of memory (OOMKilled)"
        code = done.get("exitCode")
        if code == 0:
            return "the project's agent exited"
        detail = (done.get("message") or "").strip().splitlines()[-1:] or [""]
        return f"the project's agent crashed (exit code {code}) {detail[0]}".strip()
    return None


def _condition(status: dict[str, Any], kind: str) -> tuple[str | None, str | None]:
    for condition in status.get("conditions") or ():
        if condition.get("type") == kind:
            return condition.get("status"), condition.get("message") or condition.get("reason")
    return None, None


def _message(status: dict[str, Any], fallback: str) -> str:
    reason, message = status.get("reason"), status.get("message")
    if reason or message:
        return f"{fallback}: {' '.join(filter(None, (reason, message)))}"
    return fallback
