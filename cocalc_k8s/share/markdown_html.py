"""Markdown to safe HTML (pure): Python-Markdown with tables, fenced code highlighted by
pygments, a table of contents (`[TOC]`), footnotes and task lists; math kept intact (see
`math`); the result sanitised (see `sanitize`). Raw HTML in the markdown is allowed in and
sanitised like the rest. `attr_list` is deliberately not enabled: it would let a reader's
markdown write attributes (event handlers) that the sanitiser then has to catch.
"""

from __future__ import annotations

import re

import markdown

from cocalc_k8s.share.links import Links
from cocalc_k8s.share.math import extract_math
from cocalc_k8s.share.sanitize import sanitize

EXTENSIONS = ["tables", "fenced_code", "codehilite", "toc", "footnotes", "sane_lists"]
EXTENSION_CONFIGS = {
    "codehilite": {"css_class": "highlight", "guess_lang": False},
    "toc": {"permalink": False},
}
_TASK = re.compile(r"<li>(\s*<p>)?\s*\[([ xX])\]\s")


def _task_lists(html: str) -> str:
    """`- [ ] item` / `- [x] item` as marked list items (no form inputs: nothing to post)."""

    def mark(match: re.Match[str]) -> str:
        done = match.group(2) != " "
        box = '<span class="task-done">☑</span> ' if done else '<span class="task-open">☐</span> '
        return f'<li class="task-list-item">{match.group(1) or ""}{box}'

    return _TASK.sub(mark, html)


def render_markdown(text: str, links: Links) -> str:
    prepared, restore = extract_math(text)
    converter = markdown.Markdown(extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS)
    html = converter.convert(prepared)
    return sanitize(restore(_task_lists(html)), links)
