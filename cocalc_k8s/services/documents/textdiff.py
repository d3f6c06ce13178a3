"""Text changes as minimal diffs, and the three-way merge of a change made on disk.

A change on disk never replaces a document: it becomes the few insertions and deletions
that turn the document's text into the new one (`apply_diff`), so collaborators' cursors
and concurrent edits survive it. When the document has moved on since the text on disk
was last in step with it (`base`), the disk's own change (`base` -> `disk`) is carried
over onto the current text (`merge3`) instead of undoing the document's newer edits.

Pure functions (no I/O); the diff itself is diff-match-patch's (Myers, with a deadline).
"""

from __future__ import annotations

from bisect import bisect_right

from diff_match_patch import diff_match_patch
from pycrdt import Doc, Text

DIFF_TIMEOUT = 2.0  # seconds: past it the diff is coarser, never wrong
_OPS = {0: "=", -1: "-", 1: "+"}


def diff(old: str, new: str) -> list[tuple[str, str]]:
    """`[(op, run)]` with op "=", "-" or "+" (runs of `old` kept, deleted, of `new`
    inserted), in order."""
    if old == new:
        return [("=", old)] if old else []
    differ = diff_match_patch()
    differ.Diff_Timeout = DIFF_TIMEOUT
    return [(_OPS[op], run) for op, run in differ.diff_main(old, new)]


def apply_diff(text: Text, ops: list[tuple[str, str]]) -> None:
    """Apply a diff of `str(text)` to the shared text, inside the caller's transaction.

    pycrdt addresses text by UTF-8 byte offsets (an offset inside a character corrupts
    the edit), so positions are counted in encoded bytes, run by run."""
    offset = 0
    for op, run in ops:
        size = len(run.encode())
        if op == "=":
            offset += size
        elif op == "-":
            del text[offset : offset + size]
        else:
            text.insert(offset, run)
            offset += size


def update_to(state: bytes, name: str, new: str) -> bytes:
    """The Yjs update that turns the shared text `name` of the document whose whole state
    is `state` into `new`, as a minimal diff. Made on a copy (the live document changes
    only once the update is committed), from bytes, so it may run in a worker thread."""
    copy: Doc[Text] = Doc()
    copy.apply_update(state)
    before = copy.get_state()
    text = copy.get(name, type=Text)
    ops = diff(str(text), new)
    with copy.transaction():
        apply_diff(text, ops)
    return copy.get_update(before)


def merge3(base: str, current: str, disk: str) -> str:
    """`current` with the change from `base` to `disk` carried over.

    Each hunk of the disk's change is placed where its position in `base` now is in
    `current` (a position inside text that `current` deleted goes to where that text
    was). Where both changed the same place, both changes are kept."""
    if disk == base:
        return current
    if current == base:
        return disk
    mapping = _PositionMap(diff(base, current))
    out: list[str] = []
    done = 0  # position in `current` copied to `out` so far
    for start, end, inserted in _hunks(diff(base, disk)):
        c_start = max(mapping.to_current(start), done)
        c_end = max(mapping.to_current(end), c_start)
        out.append(current[done:c_start])
        out.append(inserted)
        done = c_end
    out.append(current[done:])
    return "".join(out)


def _hunks(ops: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """The changes of a diff as `(start, end, inserted)` in the old text's positions."""
    hunks: list[tuple[int, int, str]] = []
    pos = 0
    for op, run in ops:
        if op == "=":
            pos += len(run)
            continue
        if hunks and hunks[-1][1] == pos and (op == "+" or hunks[-1][2] == ""):
            start, end, inserted = hunks.pop()
        else:
            start, end, inserted = pos, pos, ""
        if op == "-":
            end += len(run)
            pos += len(run)
        else:
            inserted += run
        hunks.append((start, end, inserted))
    return hunks


class _PositionMap:
    """Maps positions of a diff's old text to its new text."""

    def __init__(self, ops: list[tuple[str, str]]) -> None:
        self._old: list[int] = []  # where each kept or deleted run starts in the old text
        self._runs: list[tuple[str, int, int]] = []  # (op, length, start in the new text)
        old = new = 0
        for op, run in ops:
            if op == "+":
                new += len(run)
                continue
            self._old.append(old)
            self._runs.append((op, len(run), new))
            old += len(run)
            if op == "=":
                new += len(run)
        self._end = (old, new)

    def to_current(self, pos: int) -> int:
        if pos >= self._end[0]:
            return self._end[1] + (pos - self._end[0])
        i = bisect_right(self._old, pos) - 1
        op, _, new_start = self._runs[i]
        return new_start + (pos - self._old[i]) if op == "=" else new_start
