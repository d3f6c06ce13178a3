"""Jupyter notebooks as safe HTML (pure).

Everything taken from the notebook is either escaped (titles, tags, languages, code,
stream text, tracebacks, plain-text outputs), highlighted by pygments, or sanitised
(markdown cells, HTML and markdown outputs). Images are `<img>` with a `data:` URL built
from validated base64 (SVG too: as an image it cannot run script); width and height are
kept only as plain numbers. JavaScript and widget outputs are shown as "not rendered".
Metadata (output file names, widget state) is never put in the page.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from typing import Any

import nbformat

from cocalc_k8s.share.ansi import ansi_to_html
from cocalc_k8s.share.code_html import highlight_block
from cocalc_k8s.share.links import Links
from cocalc_k8s.share.markdown_html import render_markdown
from cocalc_k8s.share.sanitize import sanitize

_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
_NOT_RENDERED = {
    "application/javascript": "JavaScript output (not rendered)",
    "application/vnd.jupyter.widget-view+json": "interactive widget (not rendered)",
}
_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _language(nb: Any) -> str:
    meta = nb.get("metadata", {})
    info = meta.get("language_info", {}) if isinstance(meta, dict) else {}
    kernel = meta.get("kernelspec", {}) if isinstance(meta, dict) else {}
    for value in (info.get("name"), kernel.get("language")):
        if isinstance(value, str) and value:
            return value
    return "python"


def _size_attrs(meta: Any, mime: str) -> str:
    if not isinstance(meta, dict):
        return ""
    own = meta.get(mime, meta)
    attrs = []
    for key in ("width", "height"):
        value = own.get(key) if isinstance(own, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 100_000:
            attrs.append(f' {key}="{value}"')
    return "".join(attrs)


def _image(mime: str, data: Any, meta: Any) -> str:
    raw = _text(data)
    if mime == "image/svg+xml":
        raw = base64.b64encode(raw.encode()).decode()
    elif not _BASE64.match(raw):
        return '<p class="nb-note">image with invalid data (not shown)</p>'
    try:
        base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        return '<p class="nb-note">image with invalid data (not shown)</p>'
    clean = "".join(raw.split())
    size = _size_attrs(meta, mime)
    return f'<img class="nb-image" alt="output image" src="data:{mime};base64,{clean}"{size}>'


def _rich(output: Any, links: Links) -> str:
    data = output.get("data", {})
    if not isinstance(data, dict):
        return ""
    meta = output.get("metadata", {})
    for mime, note in _NOT_RENDERED.items():
        if mime in data and "text/html" not in data and not any(m in data for m in _IMAGES):
            return f'<p class="nb-note">{note}</p>'
    if "text/html" in data:
        return f'<div class="nb-html">{sanitize(_text(data["text/html"]), links)}</div>'
    for mime in _IMAGES:
        if mime in data:
            return _image(mime, data[mime], meta)
    if "text/markdown" in data:
        return (
            f'<div class="nb-markdown">{render_markdown(_text(data["text/markdown"]), links)}</div>'
        )
    if "text/latex" in data:
        return f'<div class="nb-latex">{render_markdown(_text(data["text/latex"]), links)}</div>'
    if "text/plain" in data:
        return f"<pre>{ansi_to_html(_text(data['text/plain']))}</pre>"
    return '<p class="nb-note">output of a type not shown here</p>'


def _output(output: Any, links: Links) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return f'<pre class="nb-stream nb-{name}">{ansi_to_html(_text(output.get("text")))}</pre>'
    if kind == "error":
        trace = "\n".join(_text(line) for line in output.get("traceback", []) or [])
        if not trace:
            trace = f"{_text(output.get('ename'))}: {_text(output.get('evalue'))}"
        return f'<pre class="nb-error">{ansi_to_html(trace)}</pre>'
    if kind in ("display_data", "execute_result"):
        return _rich(output, links)
    return ""


def _count(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else " "


def _cell(cell: Any, language: str, links: Links) -> str:
    kind = cell.get("cell_type")
    source = _text(cell.get("source"))
    tags = cell.get("metadata", {}).get("tags", [])
    tag_html = ""
    if isinstance(tags, list) and tags:
        tag_html = (
            '<div class="nb-tags">'
            + "".join(f'<span class="nb-tag">{html.escape(str(t))}</span>' for t in tags[:20])
            + "</div>"
        )
    if kind == "markdown":
        return (
            f'<section class="nb-cell nb-md">{tag_html}{render_markdown(source, links)}</section>'
        )
    if kind == "code":
        count = _count(cell.get("execution_count"))
        outputs = "".join(_output(o, links) for o in cell.get("outputs", []) or [])
        return (
            f'<section class="nb-cell nb-code">{tag_html}'
            f'<div class="nb-input"><span class="nb-prompt">In&nbsp;[{count}]:</span>'
            f"{highlight_block(source, language)}</div>"
            + (f'<div class="nb-outputs">{outputs}</div>' if outputs else "")
            + "</section>"
        )
    return f'<section class="nb-cell nb-raw"><pre>{html.escape(source)}</pre></section>'


def render_notebook(text: str, links: Links) -> str:
    nb: Any = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
    language = _language(nb)
    cells = "".join(_cell(cell, language, links) for cell in nb.get("cells", []))
    return (
        f'<div class="notebook" data-language="{html.escape(language)}">'
        f'<p class="nb-language">Language: {html.escape(language)}</p>{cells}</div>'
    )
