"""HTTP Range headers (RFC 9110 §14): one byte range, as file downloads need."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class RangeNotSatisfiable(Exception):
    """The range lies outside the file; answer 416 with `Content-Range: bytes */size`."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive byte positions, or None to send the whole file.

    Multiple ranges and malformed headers are ignored (the whole file is sent), as the
    RFC allows; an unsatisfiable single range raises RangeNotSatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the final N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable
    return start, end


def parse_content_range(header: str) -> tuple[int, int, int | None]:
    """(first, last inclusive, total or None) of a request's `Content-Range: bytes a-b/n`.

    Raises ValueError for anything else (a chunked upload needs a definite range)."""
    match = _CONTENT_RANGE.match(header.strip())
    if match is None:
        raise ValueError("Content-Range must look like 'bytes first-last/total'")
    first, last, total = match.groups()
    if int(last) < int(first):
        raise ValueError("Content-Range ends before it starts")
    return int(first), int(last), None if total == "*" else int(total)
