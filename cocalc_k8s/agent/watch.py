"""The home's file watcher: which text files changed, for the hub to pull.

The agent cannot call the hub (project pods cannot reach private ranges, a sandbox sees
no hub), so the hub asks: ``GET /watch?after=N&instance=I&timeout=S&max_bytes=B`` waits
up to S seconds for changes numbered after N and answers

    {"instance": str, "cursor": int, "reset": bool,
     "changes": [{"path": str, "kind": "modified" | "deleted"}]}

Changes are numbered 1, 2, ... per agent process (`instance`, random per start). The hub
passes back the `cursor` and `instance` it got; `reset` is true when it cannot be told
exactly what changed since (its first call, another instance, a cursor older than the
changes kept): it should then take every file it cares about as possibly changed.

Watching starts with the agent (inotify through `watchfiles`, so a change made right
after a start is not missed); while nothing changes it costs nothing (the watcher sleeps
in the kernel). Reported: regular files up to `max_bytes` (the most recent request's)
that hold no NUL byte in their first 8 KiB, and every deletion. Ignored: `.git/objects`,
caches, virtualenvs, `node_modules`, and the hub's own temporary files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections import deque
from pathlib import Path

import watchfiles

log = logging.getLogger("cocalc_k8s.agent.watch")
logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it logs every batch at INFO

KEPT = 20_000  # changes kept for hubs that come back late; older ones mean `reset`
MAX_ANSWER = 5_000  # changes per answer (the hub asks again at once for more)
SNIFF = 8192
IGNORED_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        ".cache",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".venv",
        "venv",
        ".virtualenvs",
        "site-packages",
        ".ipynb_checkpoints",
        ".npm",
        ".yarn",
        ".cargo",
        ".rustup",
    }
)
IGNORED_PREFIXES = (".cocalc-upload-", ".cocalc-copy-")  # the hub's temporary files


def ignored(rel: str) -> bool:
    """Paths whose changes nobody wants as versions (pure: tested on strings)."""
    parts = rel.split("/")
    if any(p in IGNORED_DIRS for p in parts[:-1]):
        return True
    if any(p.startswith(IGNORED_PREFIXES) for p in parts):
        return True
    for i, part in enumerate(parts[:-1]):
        if part == ".git" and parts[i + 1] == "objects":
            return True
    name = parts[-1]
    return name.endswith((".pyc", ".swp", ".swx", "~")) or name.startswith(".#")


def is_text_file(path: Path, max_bytes: int) -> bool:
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
                return False
            return b"\0" not in f.read(SNIFF)
    except OSError:
        return False


class HomeWatcher:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.instance = secrets.token_hex(8)
        self.cursor = 0
        self.max_bytes = 1 << 20
        self._changes: deque[tuple[int, str, str]] = deque(maxlen=KEPT)
        self._arrived = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        prefix = str(self.home).rstrip("/") + "/"

        def wanted(_change: watchfiles.Change, path: str) -> bool:
            return path.startswith(prefix) and not ignored(path[len(prefix) :])

        while not self._stop.is_set():
            try:
                async for batch in watchfiles.awatch(
                    self.home,
                    watch_filter=wanted,
                    debounce=200,
                    step=50,
                    stop_event=self._stop,
                    ignore_permission_denied=True,
                ):
                    found = await asyncio.to_thread(self._classify, batch, len(prefix))
                    await self._add(found)
            except Exception:
                log.exception("the file watcher failed; it starts again")
                await self._add([("", "reset")])
                await asyncio.sleep(1.0)

    def _classify(
        self, batch: set[tuple[watchfiles.Change, str]], cut: int
    ) -> list[tuple[str, str]]:
        latest: dict[str, watchfiles.Change] = {}
        for change, path in batch:
            latest[path] = change  # one entry per path and batch
        found: list[tuple[str, str]] = []
        for path, change in sorted(latest.items()):
            rel = path[cut:]
            if change == watchfiles.Change.deleted or not os.path.lexists(path):
                found.append((rel, "deleted"))
            elif change == watchfiles.Change.added and os.path.isdir(path):
                # Files written into a new directory before its inotify watch existed
                # raise no event of their own: report what it holds.
                found.extend((p[cut:], "modified") for p in self._text_files_in(path))
            elif is_text_file(Path(path), self.max_bytes):
                found.append((rel, "modified"))
        return found

    def _text_files_in(self, folder: str, limit: int = 10_000) -> list[str]:
        out: list[str] = []
        prefix = len(str(self.home).rstrip("/")) + 1
        for top, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if not ignored(os.path.join(top, d, "x")[prefix:])]
            for name in names:
                path = os.path.join(top, name)
                if not ignored(path[prefix:]) and is_text_file(Path(path), self.max_bytes):
                    out.append(path)
                    if len(out) >= limit:
                        return out
        return out

    async def _add(self, found: list[tuple[str, str]]) -> None:
        if not found:
            return
        async with self._arrived:
            for rel, kind in found:
                self.cursor += 1
                self._changes.append((self.cursor, rel, kind))
            self._arrived.notify_all()

    async def changes(
        self, *, after: int, instance: str, wait: float
    ) -> tuple[int, bool, list[dict[str, str]]]:
        """(cursor, reset, changes after `after`), waiting up to `wait` seconds for one."""
        self.start()
        if instance != self.instance or after > self.cursor:
            return self.cursor, True, []
        async with self._arrived:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._arrived.wait_for(lambda: self.cursor > after)
        reset = bool(self._changes) and after < self._changes[0][0] - 1
        out: list[dict[str, str]] = []
        cursor = after
        for seq, rel, kind in self._changes:
            if seq <= after:
                continue
            if len(out) >= MAX_ANSWER:
                break
            cursor = seq
            if kind == "reset":
                reset = True
            else:
                out.append({"path": rel, "kind": kind})
        return (self.cursor if reset else cursor), reset, out
