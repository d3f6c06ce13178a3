"""Large binary messages in parts of at most `PART_BYTES` (docs/realtime.md, "parts").

engine.io drops messages over its `max_http_buffer_size` and the hub caps a request body
(a polling POST) at 1 MiB, so no message carries more than 256 KiB of binary data.
"""

from __future__ import annotations

import uuid
from typing import Any

PART_BYTES = 256 * 1024


def split(data: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """`[(part, slice)]` for a payload over PART_BYTES, `[]` for one that fits whole."""
    if len(data) <= PART_BYTES:
        return []
    part_id = uuid.uuid4().hex
    slices = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    return [
        ({"id": part_id, "index": i, "count": len(slices)}, piece) for i, piece in enumerate(slices)
    ]


class PartError(ValueError):
    pass


class Assembler:
    """Collects the parts of one sender's updates, per document; bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._parts: dict[str, tuple[str, list[bytes], int]] = {}  # doc -> (id, slices, size)

    def add(self, doc: str, part: Any, data: bytes) -> bytes | None:
        """The whole update once its last part arrived, else None. PartError for parts
        out of order, malformed, or over the limit (the partial update is dropped)."""
        if not isinstance(part, dict):
            raise PartError("part must be {id, index, count}")
        part_id, index, count = part.get("id"), part.get("index"), part.get("count")
        if not (isinstance(part_id, str) and isinstance(index, int) and isinstance(count, int)):
            raise PartError("part must be {id, index, count}")
        if len(data) > PART_BYTES:
            raise PartError(f"a part holds at most {PART_BYTES} bytes")
        current = self._parts.get(doc)
        if index == 0:
            current = (part_id, [], 0)
        if current is None or current[0] != part_id or len(current[1]) != index or index >= count:
            self._parts.pop(doc, None)
            raise PartError("parts out of order")
        slices, size = current[1], current[2] + len(data)
        if size > self.max_bytes:
            self._parts.pop(doc, None)
            raise PartError("update too large")
        slices.append(data)
        if index == count - 1:
            self._parts.pop(doc, None)
            return b"".join(slices)
        self._parts[doc] = (part_id, slices, size)
        return None

    def drop(self, doc: str) -> None:
        self._parts.pop(doc, None)
