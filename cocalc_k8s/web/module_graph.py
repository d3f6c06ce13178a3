"""The static imports of the hub's JavaScript modules, so a page can preload a module's
whole dependency tree at once instead of discovering it one round trip at a time (the
vendored CodeMirror bundle alone is a chain of chunks)."""

from __future__ import annotations

import functools
import posixpath
import re
from pathlib import Path

# `import x from "./a.js"`, `import{a as b}from"./a.js"`, `import "./a.js"`, `export * from
# "./a.js"`, minified or not; never `import("./a.js")` (loaded later, on demand).
_STATIC_IMPORT = re.compile(
    r"""(?:^|[;\s}])(?:import|export)\s*(?:[\w*${},\s]*?\s*from\s*)?["'](\.{1,2}/[^"']+)["']"""
)


@functools.cache
def module_closure(static_dir: Path, entries: tuple[str, ...]) -> tuple[str, ...]:
    """Every module the `entries` (paths under `static_dir`) import statically, themselves
    included, in a stable order. Files never change while the hub runs: cached for good."""
    seen: dict[str, None] = {}
    pending = list(entries)
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        try:
            source = (static_dir / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # a missing module is the browser's error to show, not the page's
        seen[name] = None
        base = posixpath.dirname(name)
        for found in _STATIC_IMPORT.findall(source):
            target = posixpath.normpath(posixpath.join(base, found))
            if not target.startswith("../"):
                pending.append(target)
    return tuple(seen)
