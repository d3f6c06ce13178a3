"""The one sanitiser of user HTML (markdown output, notebook HTML outputs): nh3 (ammonia).

Allow-list: nh3's default tags and attributes, plus the classes our own renderers emit
(pygments token classes, math, footnotes, table of contents, task lists), given through
`allowed_classes` (listing `class` in `attributes` too makes nh3 panic). Every `id` and
`name` is prefixed (`user-content-`) against DOM clobbering; links and images are resolved
inside the published item (see `links`), other schemes dropped. Comments are stripped;
`script`, `style` and friends are removed with their content.
"""

from __future__ import annotations

import contextvars
from typing import Final

import nh3
from pygments.token import STANDARD_TYPES

from cocalc_k8s.share.links import ID_PREFIX, Links

PYGMENTS_CLASSES: Final = frozenset(c for c in STANDARD_TYPES.values() if c)
OUR_CLASSES: Final = frozenset(
    {
        "highlight", "math-inline", "math-display", "footnote", "footnote-ref",
        "footnote-backref", "toc", "task-list-item", "task-done", "task-open", "admonition",
    }
)  # fmt: skip
_CLASSES = {tag: set(PYGMENTS_CLASSES | OUR_CLASSES) for tag in ("span", "div", "code", "pre")}
_CLASSES.update({tag: set(OUR_CLASSES) for tag in ("a", "li", "ul", "ol", "sup", "hr", "p")})

_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"id", "title", "lang", "dir"}
_ATTRIBUTES["a"] = {"href", "hreflang", "name"}
_ATTRIBUTES["img"] = {"src", "alt", "width", "height"}
_ATTRIBUTES["td"] = {"colspan", "rowspan", "align"}
_ATTRIBUTES["th"] = {"colspan", "rowspan", "align", "scope"}

_LINKS: contextvars.ContextVar[Links | None] = contextvars.ContextVar("links", default=None)


def _numeric(value: str) -> str | None:
    return value if value.isdigit() and len(value) <= 5 else None


def _filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute in ("id", "name"):
        return ID_PREFIX + value
    if attribute in ("width", "height"):
        return _numeric(value.strip())
    if attribute in ("href", "src", "cite"):
        links = _LINKS.get()
        if links is None:
            return None
        return links.resolve(value, media=tag == "img")
    return value


_CLEANER = nh3.Cleaner(
    tags=set(nh3.ALLOWED_TAGS),
    clean_content_tags={"script", "style", "iframe", "object", "embed", "template", "noscript"},
    attributes=_ATTRIBUTES,
    allowed_classes=_CLASSES,
    attribute_filter=_filter,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def sanitize(html: str, links: Links) -> str:
    token = _LINKS.set(links)
    try:
        return _CLEANER.clean(html)
    finally:
        _LINKS.reset(token)
