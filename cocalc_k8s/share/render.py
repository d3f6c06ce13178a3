"""One entry point for every renderer (pure): `render(kind, data, name, links)` returns
the HTML body of the item. This is what the worker process runs."""

from __future__ import annotations

from cocalc_k8s.share.code_html import render_code, render_text
from cocalc_k8s.share.links import Links
from cocalc_k8s.share.markdown_html import render_markdown
from cocalc_k8s.share.notebook_html import render_notebook

# Part of the cache key: bump it whenever any renderer's output changes.
RENDERER_VERSION = "1"


def render(kind: str, data: bytes, name: str, links: Links) -> str:
    text = data.decode("utf-8", errors="replace")
    if kind == "markdown":
        return f'<article class="markdown-body">{render_markdown(text, links)}</article>'
    if kind == "notebook":
        return render_notebook(text, links)
    if kind == "html":  # shown as source; the page frames the sandboxed rendering
        return render_code(text, name)
    if kind == "code":
        return render_code(text, name)
    if kind == "text":
        return render_text(text)
    raise ValueError(f"no renderer for {kind}")
