"""Start-up checks of the machine local projects run on, each a real run of a program.

- can bubblewrap make a project's sandbox here? (`sandbox.sandbox_available`);
- can a project's user run the agent's interpreter, the way a project will: inside its
  sandbox, or, unsandboxed, directly as a uid of its own when the hub is root? A venv made
  from a Python under a private directory (pyenv in /root, mode 0700) cannot be run
  unsandboxed (the sandbox binds it in with traversable parents).

Each problem is one sentence that names the cure. The programs run off the event loop,
with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cocalc_k8s.backends.sandbox import (
    SandboxSpec,
    bwrap_command,
    etc_files,
    etc_names,
    python_paths,
    sandbox_available,
    system_layout,
)
from cocalc_k8s.core.isolation import Isolation, decide_isolation
from cocalc_k8s.core.settings import Settings

PROBE_TIMEOUT = 10.0
NOBODY = 65534  # any uid but the files' owner is refused the same way a project's is
_IMPORT_AGENT = ("-c", "import cocalc_k8s.agent")
_CURE = (
    "make the directories above it searchable by others (chmod o+x), or install "
    "cocalc-k8s outside private directories (e.g. a venv in /opt) and run the hub from there"
)


@dataclass(frozen=True, slots=True)
class HostCheck:
    """What start-up learnt: how projects are kept apart, and why no project can start
    (None when they can)."""

    isolation: Isolation
    start_problem: str | None


async def interpreter_problem(
    python: str, *, uid: int | None, sandboxed: bool = False
) -> str | None:
    """Why a project (running as `uid`, or as the hub's user when None) cannot run the
    agent with `python`, or None. Unsandboxed, the hub's own user always can."""
    if uid is None and not sandboxed:
        return None
    with tempfile.TemporaryDirectory(prefix="cocalc-probe-") as scratch:
        argv = [python, *_IMPORT_AGENT]
        if sandboxed:
            argv = await asyncio.to_thread(_in_sandbox, Path(scratch), argv, uid)
        try:
            code, output = await _run(argv, uid=None if sandboxed else uid)
        except (FileNotFoundError, PermissionError) as exc:
            return f"projects cannot execute {python}: {exc.strerror}; {_CURE}"
        except TimeoutError:
            return f"{python} did not start within {PROBE_TIMEOUT:.0f} s as a project's user"
    if code == 0:
        return None
    shown = output or f"exit code {code}"
    return f"projects cannot run the agent with {python}: {shown}; {_CURE}"


def _in_sandbox(scratch: Path, argv: list[str], uid: int | None) -> list[str]:
    """`argv` in a sandbox like a project's, with a scratch home (blocking: files)."""
    home, etc = scratch / "home", scratch / "etc"
    home.mkdir()
    etc.mkdir()
    for name, text in etc_files(uid=uid or os.getuid(), home=home, hostname="probe").items():
        (etc / name).write_text(text)
    if uid is not None:
        os.chown(home, uid, uid)
    spec = SandboxSpec(
        home=home, uid=uid, etc_dir=etc, read_only=python_paths(), etc_entries=etc_names()
    )
    return bwrap_command(spec, argv, is_link=system_layout())


async def _run(argv: list[str], *, uid: int | None = None) -> tuple[int, str]:
    """(exit code, the last line of its output); TimeoutError after `PROBE_TIMEOUT`."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd="/",
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


_checked: dict[tuple[str, bool], HostCheck] = {}


async def check_host(settings: Settings) -> HostCheck:
    """Both checks, for the backend the settings choose (Kubernetes needs neither: pods are
    isolated by the cluster and run the project image's own interpreter). Remembered for
    the life of the process (per PATH, where bubblewrap is looked up): the machine does
    not change under a running hub, and tests start many hubs."""
    if settings.backend == "kubernetes":
        isolation = decide_isolation(
            backend=settings.backend, sandbox_problem=None, trusted_users=settings.trusted_users
        )
        return HostCheck(isolation, None)
    key = (os.environ.get("PATH", ""), settings.trusted_users)
    if key not in _checked:
        sandbox = await asyncio.to_thread(sandbox_available)
        uid = NOBODY if os.geteuid() == 0 else None
        interpreter = await interpreter_problem(sys.executable, uid=uid, sandboxed=sandbox is None)
        isolation = decide_isolation(
            backend=settings.backend, sandbox_problem=sandbox, trusted_users=settings.trusted_users
        )
        _checked[key] = HostCheck(isolation, interpreter)
    return _checked[key]
