"""The /etc a sandboxed project sees, as one directory: a copy of the host's entries that
`cocalc_k8s.backends.sandbox.ETC_ENTRIES` allows, which every sandbox binds read-only as
its /etc in one mount (its generated ``passwd``, ``group``, ``hosts`` and ``hostname`` are
bound over the empty files left for them).

Why a copy: bubblewrap mounts each bound path on its own, and the ~40 allowed entries of
/etc were most of the sandbox's set-up time (measured on a loaded 2-core machine: 81 ms
for a sandbox running ``true`` with them bound one by one, 39 ms without them).

The copy is made when first needed and again when the host's entries change, checked at
most every `CHECK_INTERVAL` seconds (in the background) by their names, sizes and
modification times: a change to the host's /etc reaches projects that start a little
after that interval. Older copies stay until the backend closes (sandboxes still running
show them).

What is copied: files, directories and symbolic links (kept as links: ``/etc/localtime``
and the certificates in ``/etc/ssl/certs`` point into ``/usr``, which sandboxes show);
entries the hub cannot read are left out (the project could not read them either); modes
are kept and owners become the hub's, so nothing becomes readable to a project that was
not (as root, a file of mode 0640 whose group could read it becomes root's).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from cocalc_k8s.backends.sandbox import GENERATED_ETC, etc_names

CHECK_INTERVAL = 60.0
Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(etc: Path, names: list[str]) -> Fingerprint:
    """(path, size, mtime) of every allowed entry and everything below it (blocking)."""
    found: list[tuple[str, int, int]] = []
    for name in names:
        top = etc / name
        for path in [top, *_below(top)]:
            try:
                stat = path.lstat()
            except OSError:
                continue
            found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def _below(path: Path) -> list[Path]:
    if path.is_symlink() or not path.is_dir():
        return []
    found: list[Path] = []
    for root, dirs, files in os.walk(path, onerror=lambda error: None):
        found += [Path(root) / name for name in (*dirs, *files)]
    return found


def copy_etc(etc: Path, names: list[str], target: Path) -> None:
    """`target` (new) holds a copy of `names` from `etc` and an empty file for each
    generated name; whatever cannot be read is left out (blocking)."""
    target.mkdir(mode=0o755)
    for name in names:
        source, copy = etc / name, target / name
        try:
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, copy, symlinks=True, ignore_dangling_symlinks=True)
            else:
                shutil.copy2(source, copy, follow_symlinks=False)
        except (OSError, shutil.Error):
            continue  # unreadable by the hub (a partial tree keeps what it could copy)
    for name in GENERATED_ETC:
        (target / name).touch(mode=0o644)
    target.chmod(0o755)


class EtcView:
    """The current copy of /etc for sandboxes, under `root` (a directory of the hub's)."""

    def __init__(self, root: Path, etc: Path = Path("/etc")) -> None:
        self.root = root
        self.etc = etc
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._fingerprint: Fingerprint = ()
        self._checked = 0.0
        self._refreshing = False
        self._made = 0

    def current(self) -> Path:
        """The copy to bind as /etc. The first call makes it (blocking: ~0.1 s); later ones
        return at once, and at most every `CHECK_INTERVAL` s start a check of the host's
        entries in a thread of its own, whose new copy (if they changed) the next call
        returns: the walk over /etc costs tens of milliseconds, not for a start to wait."""
        with self._lock:
            path = self._path
            due = path is not None and not self._refreshing
            due = due and time.monotonic() >= self._checked + CHECK_INTERVAL
            if due:
                self._refreshing = True
        if path is None:
            return self.refresh()
        if due:
            threading.Thread(target=self.refresh, name="etc-view", daemon=True).start()
        return path

    def refresh(self) -> Path:
        """Check the host's entries now and copy them if they changed (blocking)."""
        try:
            names = etc_names(self.etc)
            seen = fingerprint(self.etc, names)
            with self._lock:
                current = self._path if seen == self._fingerprint else None
                if current is None:
                    self._made += 1
                    made = self._made
            if current is None:
                current = self.root / f"etc-{made}"
                copy_etc(self.etc, names, current)
            with self._lock:
                if self._path is None or made_later(current, self._path):
                    self._path, self._fingerprint = current, seen
                self._checked = time.monotonic()
                return self._path
        finally:
            with self._lock:
                self._refreshing = False


def made_later(path: Path, other: Path) -> bool:
    """Whether copy `path` was made after copy `other` (their numbers)."""
    return int(path.name.rsplit("-", 1)[1]) > int(other.name.rsplit("-", 1)[1])
