"""Where links and images inside a published document lead (pure).

A relative URL is resolved against the document's folder, inside the published item:
pages go to `/share/{id}/{path}`, images and media to `/share/raw/{id}/{path}`. A URL that
would climb out of the item, or uses a scheme other than http(s) and mailto, is dropped.
Fragments get the `user-content-` prefix that the sanitiser gives every id, so a heading's
anchor still works and no id can clobber a global of the page's own script.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

ID_PREFIX = "user-content-"
SAFE_SCHEMES = ("http", "https", "mailto")


@dataclass(frozen=True, slots=True)
class Links:
    share_id: str
    doc_dir: str  # the document's folder, relative to the item ("" at its top)

    def page(self, rel: str) -> str:
        return f"/share/{self.share_id}/{quote(rel)}" if rel else f"/share/{self.share_id}"

    def raw(self, rel: str) -> str:
        return f"/share/raw/{self.share_id}/{quote(rel)}"

    def resolve(self, url: str, *, media: bool) -> str | None:
        """The URL to put in the page, or None to drop the attribute."""
        url = url.strip()
        if not url:
            return None
        if url.startswith("#"):
            return "#" + ID_PREFIX + url[1:]
        parts = urlsplit(url)
        if parts.scheme or url.startswith("//"):
            if parts.scheme.lower() in SAFE_SCHEMES and not (media and parts.scheme == "mailto"):
                return url
            return None
        target = unquote(parts.path)
        if "\\" in target:
            return None
        joined = posixpath.normpath(
            target.lstrip("/") if target.startswith("/") else posixpath.join(self.doc_dir, target)
        )
        if joined.startswith("..") or joined.startswith("/"):
            return None
        joined = "" if joined == "." else joined
        base = self.raw(joined) if media else self.page(joined)
        return base + (f"#{ID_PREFIX}{parts.fragment}" if parts.fragment else "")
