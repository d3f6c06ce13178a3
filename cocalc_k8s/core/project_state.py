"""The project state machine (pure).

    stopped ──start──▶ starting ──ok──▶ running ──stop──▶ stopping ──done──▶ stopped
       ▲                  │                 │                                 │
       │                  └──error──▶ failed ◀──agent died──┘                 │
       └───────────────────stop────────┘  └──start──▶ starting                │
                                                                              ▼
A hub restart or a timeout moves starting/stopping to failed (with the reason) or, when
the backend says nothing runs, to stopped. Every transition is stored with its time.
"""

from __future__ import annotations

from enum import StrEnum


class ProjectState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


ACTIVE = frozenset({ProjectState.STARTING, ProjectState.RUNNING})
_ALLOWED: dict[ProjectState, frozenset[ProjectState]] = {
    ProjectState.STOPPED: frozenset({ProjectState.STARTING}),
    ProjectState.STARTING: frozenset(
        {ProjectState.RUNNING, ProjectState.FAILED, ProjectState.STOPPING, ProjectState.STOPPED}
    ),
    ProjectState.RUNNING: frozenset(
        {ProjectState.STOPPING, ProjectState.FAILED, ProjectState.STOPPED}
    ),
    ProjectState.STOPPING: frozenset({ProjectState.STOPPED, ProjectState.FAILED}),
    ProjectState.FAILED: frozenset({ProjectState.STARTING, ProjectState.STOPPED}),
}


def can_move(current: ProjectState, target: ProjectState) -> bool:
    return target in _ALLOWED[current]


ACTIONS = ("start", "stop", "restart")
