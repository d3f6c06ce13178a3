"""The Content-Type a project's file is served with on the hub's origin (pure).

A project file is written by a user, and the hub's pages allow `script-src 'self'`: a file
served from the hub's origin as `text/javascript` (or `text/css`, `application/wasm`, a
JSON module) would be a script or stylesheet of the hub's own, one HTML injection away.
With `X-Content-Type-Options: nosniff` browsers refuse to run a script or apply a
stylesheet of any other type, so every file gets a type that is never one of those:
images, audio, video and PDF keep theirs (the Files tab shows them; no browser runs them
as script), text is `text/plain`, anything else `application/octet-stream`. Documents
that run script when opened (HTML, SVG, XML) are also sent as attachments.
"""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
MEDIA_PREFIXES = ("image/", "audio/", "video/")
KEPT = frozenset({"application/pdf"})
ATTACHMENTS = frozenset(
    {"text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml"}
)
TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/x-sh",
        "application/x-csh",
        "application/x-tex",
        "application/x-latex",
        "application/toml",
        "application/yaml",
        "application/x-yaml",
        "application/sql",
    }
)
# Text files the standard tables do not know.
TEXT_EXTENSIONS = frozenset(
    {"ipynb", "yaml", "yml", "toml", "cfg", "ini", "conf", "log", "cjs", "jsx", "tsx", "map"}
)


def download_type(path: str) -> tuple[str, bool]:
    """(Content-Type, as an attachment) for the file at `path` (its name decides)."""
    guessed = mimetypes.guess_type(path, strict=False)[0] or ""
    attachment = guessed in ATTACHMENTS
    if guessed == "image/svg+xml":
        return guessed, True  # an <img> needs the type; opened as a page, it is a download
    if guessed.startswith(MEDIA_PREFIXES) or guessed in KEPT:
        return guessed, False
    extension = path.rsplit("/", 1)[-1].rpartition(".")[2].lower()
    if (
        guessed.startswith("text/")
        or guessed.endswith(("+json", "+xml"))
        or guessed in TEXT_TYPES
        or guessed in ATTACHMENTS
        or extension in TEXT_EXTENSIONS
    ):
        return TEXT, attachment
    return BINARY, attachment


def attachment(name: str) -> str:
    """A Content-Disposition that downloads as `name`, whatever it holds (RFC 6266): the
    plain `filename` is printable ASCII, the exact name goes percent-encoded in
    `filename*`, so quotes, newlines or non-ASCII in a file name can neither break the
    header nor be refused by the server that writes it."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
