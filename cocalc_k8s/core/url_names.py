"""URL names: account usernames, project URL names and share names (pure).

A URL name is 1 to 40 (usernames) or 100 (project and share names) characters of
`a-z0-9.-`, starting and ending with a letter or digit, with no `..` (so it can never
read as a path step). Usernames are the first segment of a vanity URL
`/{username}/{project}/{share}/{path}`, beside the hub's own routes, so every first
segment the hub routes is reserved, and so is anything shaped like a project id (the
proxy's `/{project_id}/raw/...` URLs).
"""

from __future__ import annotations

import re
from typing import Any

from cocalc_k8s.core.errors import BadRequest

MAX_USERNAME = 40
MAX_URL_NAME = 100
_URL_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_PROJECT_ID_SHAPED = re.compile(
    r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"
)

# First path segments the hub serves (or may soon): never a username.
RESERVED_USERNAMES = frozenset(
    {
        "about", "account", "admin", "api", "auth", "content-auth", "docs", "favicon.ico",
        "healthz", "help", "index", "login", "logout", "metrics", "new", "projects",
        "readyz", "robots.txt", "root", "settings", "share", "sign-in", "sign-out",
        "sign-up", "signin", "signup", "sitemap.xml", "static", "support", "www",
    }
)  # fmt: skip
# Second segments with a meaning of their own under /{project_id}/...
RESERVED_PROJECT_NAMES = frozenset({"port", "server", "raw", "files", "edit", "settings"})


def url_name(value: Any, *, field: str, max_length: int = MAX_URL_NAME) -> str:
    """`value` lower-cased and checked; BadRequest says what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{field} is required")
    clean = value.strip().lower()
    if len(clean) > max_length:
        raise BadRequest(f"{field} must have at most {max_length} characters")
    if not _URL_NAME.match(clean) or ".." in clean:
        raise BadRequest(
            f"{field} may contain only a-z, 0-9, '.' and '-', and must start and end"
            " with a letter or digit"
        )
    return clean


def username(value: Any) -> str:
    clean = url_name(value, field="username", max_length=MAX_USERNAME)
    if clean in RESERVED_USERNAMES or _PROJECT_ID_SHAPED.match(clean):
        raise BadRequest(f"the username {clean!r} is reserved")
    return clean


def project_name(value: Any) -> str:
    clean = url_name(value, field="project name")
    if clean in RESERVED_PROJECT_NAMES:
        raise BadRequest(f"the project name {clean!r} is reserved")
    return clean


def share_name(value: Any) -> str:
    return url_name(value, field="name")


def slugify(text: str, *, fallback: str = "item") -> str:
    """A URL name made from free text (a file name): lower-cased, runs of anything else
    turned into '-'."""
    slug = re.sub(r"[^a-z0-9.]+", "-", text.lower())
    slug = re.sub(r"-*\.[-.]*", ".", slug).strip("-.")[:MAX_URL_NAME].strip("-.")
    return slug or fallback
