"""Start-up checks of the machine local projects run on, each a real run of a program.

- `sandbox_problem`: can bubblewrap make the namespaces a project's sandbox needs?
- `interpreter_problem`: can a project's user execute the agent's interpreter (and import
  the package)? A venv made from a Python under a private directory (pyenv in /root, mode
  0700) cannot be, once projects run as users of their own.

Each answers None when all is well, else one sentence that names the cure. They run the
program as an asyncio subprocess with a timeout, so the event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cocalc_k8s.core.isolation import Isolation, decide_isolation
from cocalc_k8s.core.settings import Settings

PROBE_TIMEOUT = 10.0
NOBODY = 65534  # any uid other than the files' owner is refused the same way
# The namespaces of a project's sandbox; a user namespace too where the hub is not root.
_BWRAP_ARGS = (
    "--unshare-all",
    "--die-with-parent",
    "--ro-bind", "/", "/",
    "--proc", "/proc",
    "--dev", "/dev",
    "true",
)  # fmt: skip


async def sandbox_problem(bwrap: str) -> str | None:
    """Why bubblewrap cannot sandbox a project here, or None."""
    try:
        code, output = await _run([bwrap, *_BWRAP_ARGS])
    except FileNotFoundError:
        return f"bubblewrap is not installed (no {bwrap!r} found)"
    except PermissionError:
        return f"{bwrap!r} cannot be executed"
    except TimeoutError:
        return f"bubblewrap did not finish within {PROBE_TIMEOUT:.0f} s"
    if code == 0:
        return None
    return f"bubblewrap fails here: {output or f'exit code {code}'}"


async def interpreter_problem(python: str, *, uid: int | None) -> str | None:
    """Why a project (running as `uid`, or as the hub's user when None) cannot run the
    agent with `python`, or None. The hub's own user always can, so only a uid of its own
    is checked."""
    if uid is None:
        return None
    cure = (
        "make its directories readable and searchable by others, or install cocalc-k8s "
        "outside private directories (e.g. a venv in /opt) and pass --project-python"
    )
    try:
        code, output = await _run([python, "-c", "import cocalc_k8s.agent"], uid=uid, cwd=Path("/"))
    except (FileNotFoundError, PermissionError) as exc:
        return f"projects cannot execute {python}: {exc.strerror}; {cure}"
    except TimeoutError:
        return f"{python} did not start within {PROBE_TIMEOUT:.0f} s as a project's user"
    if code == 0:
        return None
    return f"projects cannot run the agent with {python}: {output or f'exit code {code}'}; {cure}"


async def _run(
    argv: list[str], *, uid: int | None = None, cwd: Path | None = None
) -> tuple[int, str]:
    """(exit code, the last line of its output); TimeoutError after `PROBE_TIMEOUT`."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
        preexec_fn=None if uid is None else lambda: _become(uid),
    )
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    lines = [x.strip() for x in output.decode("utf-8", "replace").splitlines() if x.strip()]
    return process.returncode or 0, lines[-1][:300] if lines else ""


def _become(uid: int) -> None:  # pragma: no cover - in the child
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


@dataclass(frozen=True, slots=True)
class HostCheck:
    """What start-up learnt: how projects are kept apart, and why none can start (None
    when they can)."""

    isolation: Isolation
    start_problem: str | None


_checked: dict[tuple[str, str, bool], HostCheck] = {}


async def check_host(settings: Settings, *, python: str) -> HostCheck:
    """Both checks, for the backend the settings choose (Kubernetes needs neither: pods are
    isolated by the cluster and run the project image's own interpreter). Remembered for
    the life of the process: the machine does not change under a running hub, and tests
    start many hubs."""
    if settings.backend == "kubernetes":
        isolation = decide_isolation(
            backend=settings.backend, sandbox_problem=None, trusted_users=settings.trusted_users
        )
        return HostCheck(isolation, None)
    key = (settings.bwrap, python, settings.trusted_users)
    if key not in _checked:
        _checked[key] = await _check_local(settings, python=python)
    return _checked[key]


async def _check_local(settings: Settings, *, python: str) -> HostCheck:
    sandbox, interpreter = await asyncio.gather(
        sandbox_problem(settings.bwrap),
        interpreter_problem(python, uid=NOBODY if os.geteuid() == 0 else None),
    )
    isolation = decide_isolation(
        backend=settings.backend, sandbox_problem=sandbox, trusted_users=settings.trusted_users
    )
    return HostCheck(isolation, interpreter)
