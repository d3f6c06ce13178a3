"""Where project content is served: one origin shared by every project, or an origin per
project when the content URL has a wildcard host (`https://*.projects.example.org` gives
project P `https://P.projects.example.org`).

With an origin per project, browsers keep projects apart by themselves: a page of one
project cannot read another's responses or send its cookies. Paths stay the same in both
modes (`/{project_id}/port/…`), so a server inside a project never needs to know which.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

WILDCARD = "://*."


def valid_template(url: str) -> bool:
    """http(s)://host[:port], where the host may start with one `*.` label."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return False
    if parts.query or parts.fragment or "@" in parts.netloc:
        return False
    host = parts.netloc[2:] if parts.netloc.startswith("*.") else parts.netloc
    return "*" not in host and bool(host) and not host.startswith(".")


@dataclass(frozen=True)
class ContentOrigins:
    template: str  # scheme://host[:port], the host possibly starting with "*."

    @property
    def per_project(self) -> bool:
        return WILDCARD in self.template

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
