"""What a published file is shown as, and the limits of each renderer (pure).

A file over its kind's size limit is not rendered: the page offers the download instead.
The time limit bounds one render in its worker process (see `worker`).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

from cocalc_k8s.share.code_html import lexer_for

Kind = Literal[
    "markdown", "notebook", "html", "code", "text", "image", "pdf", "audio", "video", "binary"
]
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    seconds: float


# Rendered in a worker (text in, HTML out); the other kinds need no rendering.
LIMITS: dict[str, Limits] = {
    "markdown": Limits(2 * MB, 10.0),
    "notebook": Limits(10 * MB, 30.0),
    "html": Limits(2 * MB, 10.0),
    "code": Limits(2 * MB, 10.0),
    "text": Limits(5 * MB, 10.0),
}
_BY_EXTENSION: dict[str, Kind] = {
    ".md": "markdown", ".markdown": "markdown", ".ipynb": "notebook",
    ".html": "html", ".htm": "html",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".gif": "image", ".svg": "image",
    ".webp": "image", ".avif": "image", ".bmp": "image", ".ico": "image",
    ".pdf": "pdf",
    ".mp3": "audio", ".ogg": "audio", ".oga": "audio", ".wav": "audio", ".flac": "audio",
    ".m4a": "audio", ".opus": "audio",
    ".mp4": "video", ".webm": "video", ".ogv": "video", ".mov": "video", ".m4v": "video",
    ".txt": "text", ".text": "text", ".log": "text", ".csv": "text", ".tsv": "text",
}  # fmt: skip
README_NAMES = ("readme.md", "readme.markdown", "readme.txt", "readme")


def kind_of(name: str, head: bytes) -> Kind:
    """`head`: the file's first bytes (up to 8 KiB), to tell text from binary."""
    ext = posixpath.splitext(name.lower())[1]
    known = _BY_EXTENSION.get(ext)
    if known is not None:
        return known
    if b"\x00" in head:
        return "binary"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the head
            return "binary"
    return "code" if lexer_for(name) is not None else "text"


def rendered(kind: Kind) -> bool:
    return kind in LIMITS
