"""Where project content is served: an origin per project when the content URL has a
wildcard host (`https://*.projects.example.org` gives project P
`https://P.projects.example.org`), or one origin shared by every project when it names a
single host.

With an origin per project, browsers keep projects apart by themselves: a page of one
project cannot read another's responses, script its pages or register a Service Worker
for them. A shared origin gives no such protection (a page can forge `Referer`, open
another project's page and script it), so it is only ever an explicit choice.

With no content URL configured, projects get `http://{project_id}.localhost:{port}`:
browsers resolve every `*.localhost` name to the loopback address (RFC 6761) and treat it
as a secure context, so an origin per project costs a hub used on this machine nothing.
Paths stay the same in both modes (`/{project_id}/port/…`), so a server inside a project
never needs to know which.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

WILDCARD = "://*."
DEFAULT_PORTS = {"http": 80, "https": 443}


def local_template(port: int) -> str:
    """The default: an origin per project under `localhost`, on the content port."""
    return f"http://*.localhost:{port}"


def valid_template(url: str) -> bool:
    """http(s)://host[:port], where the host may start with one `*.` label."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return False
    if parts.query or parts.fragment or "@" in parts.netloc:
        return False
    host = parts.netloc[2:] if parts.netloc.startswith("*.") else parts.netloc
    return "*" not in host and bool(host) and not host.startswith(".")


def is_loopback(host: str | None) -> bool:
    """Whether a browser reaches `host` on its own machine: `localhost`, `*.localhost`
    (RFC 6761) or a loopback address."""
    if not host:
        return False
    host = host.lower().strip("[]").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ContentOrigins:
    template: str  # scheme://host[:port], the host possibly starting with "*."
    per_project: bool = field(init=False)  # read on every request: computed once

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_project", WILDCARD in self.template)

    def url_for(self, project_id: uuid.UUID | str) -> str:
        """The origin (no trailing slash) that serves this project's content."""
        base = self.template.rstrip("/")
        return base.replace(WILDCARD, f"://{project_id}.", 1) if self.per_project else base

    def serves(self, host: bytes | None, project_id: uuid.UUID | str) -> bool:
        """Whether a request with this Host header may get this project's content: always
        with a shared origin; with one origin per project, only on the project's own."""
        if not self.per_project:
            return True
        if not host:
            return False
        wanted = urlsplit(self.url_for(project_id)).hostname
        asked = urlsplit("//" + host.decode("latin-1")).hostname
        return asked is not None and asked == wanted

    def is_own(self, origin: bytes, project_id: uuid.UUID | str) -> bool:
        """Whether a browser's `Origin` header names this project's own origin (scheme,
        host and port; a default port may be left out on either side)."""
        return _normal(origin.decode("latin-1")) == _normal(self.url_for(project_id))


def _normal(origin: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is no number
        return None
    if not parts.hostname or parts.path not in ("", "/"):
        return None
    return parts.scheme.lower(), parts.hostname, port
