"""The container tests' fixtures: podman (or a skip with the reason), the images built once
per session by scripts/build-images.sh, and no container left behind.

Skipped when podman cannot run containers here; under CI, where scripts/test.sh has
installed podman, a build that fails is a failure, not a skip."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.container.podman import Images, build_images, podman, remove_test_containers


@pytest.fixture(scope="session")
def podman_command() -> Iterator[list[str]]:
    try:
        command = podman()
    except (ValueError, OSError) as error:
        pytest.skip(f"container tests need podman: {error}")
    yield command
    remove_test_containers(command)


@pytest.fixture(scope="session")
def images(podman_command: list[str]) -> Images:
    started = time.monotonic()
    built = build_images()
    print(f"\nimages ready in {time.monotonic() - started:.1f} s: {built}")
    return built
