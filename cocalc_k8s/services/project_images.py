"""Project image updates: which image tag each running project runs, and restarting the
ones on an old tag (Kubernetes: the pods' `project_tag` label; a new tag applies at each
project's next start, so without a restart a long-running project keeps its old image).

A restart is an ordinary restart request (recorded in the project log as the admin's, with
the reason), so it goes through the lifecycle manager like any other: one at a time per
project, acted on by the leading hub.
"""

from __future__ import annotations

import uuid
from typing import Any

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.services.lifecycle import LifecycleManager

RESTART_REASON = "project image update"


def image_report(lifecycle: LifecycleManager) -> dict[str, Any]:
    """`{"current": tag | None, "running": [{"tag", "project_ids", "outdated"}]}`, the most
    used tag first; `current` is None on a backend without images."""
    backend = lifecycle.backend
    current = backend.image_tag
    by_tag: dict[str, list[str]] = {}
    for project_id, tag in backend.running_image_tags().items():
        by_tag.setdefault(tag, []).append(str(project_id))
    running = [
        {"tag": tag, "project_ids": sorted(ids), "outdated": tag != current}
        for tag, ids in sorted(by_tag.items(), key=lambda item: (-len(item[1]), item[0]))
    ]
    return {"current": current, "running": running}


async def restart_outdated(
    lifecycle: LifecycleManager, admin_id: uuid.UUID, *, tag: str | None = None
) -> list[uuid.UUID]:
    """Ask for a restart of every running project whose tag is not the current one (or,
    with `tag`, of those on that old tag); the projects asked for, sorted."""
    backend = lifecycle.backend
    current = backend.image_tag
    if current is None:
        raise BadRequest("this backend runs projects without images")
    if tag is not None and tag == current:
        raise BadRequest(f"{tag} is the current project image tag: nothing to update")
    chosen = sorted(
        project_id
        for project_id, running in backend.running_image_tags().items()
        if running != current and (tag is None or running == tag)
    )
    for project_id in chosen:
        await lifecycle.request(project_id, "restart", account_id=admin_id, reason=RESTART_REASON)
    return chosen
