"""The Kubernetes end-to-end tests of tests/test_k8s_backend.py, again with every pod run as
a container of the built project image (tests/container/kubelet.py) instead of a local
agent process: the same test functions, with this module's `kubelet` fixture.

Left out: the watch and API-error tests (they exercise the emulated API server, not the
pods) and the out-of-memory test (it kills the local agent process directly)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cocalc_k8s.k8s.config import KubernetesConfig
from tests.container.kubelet import ContainerKubelet
from tests.container.podman import Images
from tests.k8s_emulator import KubernetesEmulator
from tests.test_k8s_backend import (
    NS,
    emulator,
    owner,
    test_a_hub_restart_keeps_pods_and_the_database_in_agreement,
    test_image_pull_backoff_fails_with_the_reason,
    test_pod_deleted_behind_the_hubs_back,
    test_resolved_names_are_stored_and_win_over_the_scheme,
    test_site_over_commit_sets_the_pod_requests,
    test_start_use_and_stop_a_project_pod,
)

pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]
__all__ = [
    "emulator",
    "owner",
    "test_a_hub_restart_keeps_pods_and_the_database_in_agreement",
    "test_image_pull_backoff_fails_with_the_reason",
    "test_pod_deleted_behind_the_hubs_back",
    "test_resolved_names_are_stored_and_win_over_the_scheme",
    "test_site_over_commit_sets_the_pod_requests",
    "test_start_use_and_stop_a_project_pod",
]


@pytest.fixture
async def kubelet(
    emulator: KubernetesEmulator, podman_command: list[str], images: Images, tmp_path: Path
) -> AsyncIterator[ContainerKubelet]:
    storage = tmp_path / "data"
    (storage / "ext").mkdir(parents=True)  # the export's /ext, as nfs-start.sh makes it
    # The hubs of these tests ask for the default project image: this node has the built
    # one under that name.
    aliases = {KubernetesConfig().image: images.project}
    kubelet = ContainerKubelet(emulator.store, storage, podman_command, NS, aliases=aliases)
    kubelet.start()
    yield kubelet
    await kubelet.close()
    assert kubelet.errors == [], "pods the kubelet could not run as specified"
