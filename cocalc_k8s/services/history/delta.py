"""How a version's text is stored: whole (zlib) or as a delta from the version before.

A delta is diff-match-patch's delta format (`=N` keep, `-N` delete, `+text` insert,
tab-separated, counted in characters), compressed with zlib: a small edit of a 100 KB
file costs tens of bytes. Pure functions; CPU-heavy for large texts, so callers run them
in a worker thread.
"""

from __future__ import annotations

import zlib

from diff_match_patch import diff_match_patch

DIFF_TIMEOUT = 1.0  # seconds: past it the delta is larger, never wrong
LEVEL = 6


def pack_text(text: str) -> bytes:
    return zlib.compress(text.encode(), LEVEL)


def unpack_text(data: bytes) -> str:
    return zlib.decompress(data).decode()


def pack_delta(old: str, new: str) -> bytes:
    differ = diff_match_patch()
    differ.Diff_Timeout = DIFF_TIMEOUT
    diffs = differ.diff_main(old, new)
    differ.diff_cleanupEfficiency(diffs)
    return zlib.compress(differ.diff_toDelta(diffs).encode(), LEVEL)


def apply_delta(old: str, data: bytes) -> str:
    differ = diff_match_patch()
    return str(differ.diff_text2(differ.diff_fromDelta(old, zlib.decompress(data).decode())))


def readable_diff(old: str, new: str) -> list[tuple[str, str]]:
    """`[(op, run)]` (op "=", "-" or "+") from `old` to `new`, cleaned up for people
    (whole words and lines rather than scattered characters)."""
    differ = diff_match_patch()
    differ.Diff_Timeout = DIFF_TIMEOUT
    diffs = differ.diff_main(old, new)
    differ.diff_cleanupSemantic(diffs)
    return [({0: "=", -1: "-", 1: "+"}[op], run) for op, run in diffs]
