"""Where a user-chosen redirect may send a browser: a path on the same origin (pure).

Sign-in pages and the content origin's sign-in take a `next` from the URL and put it in
`Location`. A value that passes a prefix check can still leave the origin or break the
header: browsers drop tabs and newlines inside URLs and read a backslash as a slash, so
`/\\t/evil.example` and `/\\\\evil.example` are `//evil.example`, a host; CR or LF would end
the header line and start a new one. So the target is parsed, and only visible ASCII is
accepted (a browser sends anything else percent-encoded anyway).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

# Visible ASCII but the backslash: no control characters, whitespace or non-ASCII.
_VISIBLE = re.compile(r"[!-\[\]-~]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DOTS = re.compile(r"/\.\.?(?:/|$)")


def local_target(value: object) -> str | None:
    """`value` if it is an absolute path on this origin ("/account?x=1#top"), else None.

    Refused: anything not a string or not starting with one "/"; control characters,
    whitespace, backslashes or non-ASCII; a scheme or a host (`//x`, `https:x`); and the
    same once percent-decoded (`/%2F/x`, `/%09/x`, `/%0d%0a…`), in case a later step
    decodes it again; dot segments (`/p/../x`, `/p/%2e%2e/x`), so that a target checked
    to start with a prefix stays under it. Percent-encoded spaces and other text stay
    allowed: file names."""
    if not isinstance(value, str) or not value.startswith("/"):
        return None
    if _VISIBLE.fullmatch(value) is None or value.startswith("//"):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    decoded = unquote(value, errors="replace")
    if decoded.startswith(("//", "/\\")) or _CONTROL.search(decoded):
        return None
    if _DOTS.search(unquote(parts.path)):  # "/p/../x" would leave the prefix it was checked for
        return None
    return value
