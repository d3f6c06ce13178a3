"""The renderers, pure: markdown (with math), notebooks, code, text, the sanitiser and
the link resolver. No server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.url_names import project_name, slugify, username
from cocalc_k8s.share.ansi import ansi_to_html
from cocalc_k8s.share.code_html import render_code, render_text
from cocalc_k8s.share.kinds import kind_of
from cocalc_k8s.share.links import Links
from cocalc_k8s.share.markdown_html import render_markdown
from cocalc_k8s.share.math import extract_math
from cocalc_k8s.share.notebook_html import render_notebook
from cocalc_k8s.share.sanitize import sanitize
from tests.share.inert import assert_inert

LINKS = Links("ID", "docs")


def test_markdown_features() -> None:
    html = render_markdown(
        "[TOC]\n\n# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [ ] open\n- [x] done\n\n"
        "Note[^1]\n\n[^1]: the note\n\n```python\ndef f(): pass\n```\n",
        LINKS,
    )
    assert '<div class="toc">' in html
    assert '<h1 id="user-content-title">Title</h1>' in html
    assert "<table>" in html and "<td>1</td>" in html
    assert '<li class="task-list-item"><span class="task-open">☐</span> open' in html
    assert '<span class="task-done">☑</span> done' in html
    assert 'class="footnote-ref"' in html and 'href="#user-content-fn:1"' in html
    assert '<span class="k">def</span>' in html  # pygments classes admitted


def test_math_survives_markdown() -> None:
    html = render_markdown("Let $a_1 * b_2 = c_3$ and\n\n$$\\sum_{i=1}^n x_i^*$$\n", LINKS)
    assert '<span class="math-inline">a_1 * b_2 = c_3</span>' in html
    assert '<span class="math-display">\\sum_{i=1}^n x_i^*</span>' in html
    assert "<em>" not in html


def test_math_leaves_code_and_prices_alone() -> None:
    text = "costs $5 and $6\n\n`$x$` here\n\n```\n$y$\n```\n\nescaped \\$z\\$\n"
    prepared, restore = extract_math(text)
    assert prepared == text
    assert restore(prepared) == text


def test_math_is_escaped() -> None:
    html = render_markdown("$<img src=x onerror=alert(1)>$", LINKS)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_links_resolve_inside_the_item() -> None:
    html = render_markdown("[a](other.md) ![b](../pic.png) [c](../../out.md) [d](#sec)", LINKS)
    assert 'href="/share/ID/docs/other.md"' in html
    assert 'src="/share/raw/ID/pic.png"' in html
    assert "out.md" not in html  # climbs out of the item: dropped
    assert 'href="#user-content-sec"' in html


XSS_PAYLOADS = [
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "[x](javascript:alert(1))",
    "[x](  JAVASCRIPT:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<img src="x" onerror="alert(1)">',
    "<select><iframe></select><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<svg><script>alert(1)</script></svg>",
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    "# title\n{: onclick=alert(1) }",
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<a href="#" onclick="alert(1)">x</a>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    "<base href=javascript:alert(1)//>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<a id="csrf-token" name="body">clobber</a><form id="x"><input name="attributes">',
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_xss_payloads_leave_no_script(payload: str) -> None:
    assert_inert(render_markdown(payload, LINKS))


def test_dom_clobbering_ids_are_prefixed() -> None:
    html = sanitize('<a id="csrf" name="location">x</a><img name="cookie" src="a.png">', LINKS)
    assert 'id="user-content-csrf"' in html
    assert 'name="user-content-location"' in html
    assert 'name="cookie"' not in html


def test_only_known_classes_pass() -> None:
    html = sanitize('<span class="k evil">x</span><div class="highlight admin">y</div>', LINKS)
    assert 'class="k"' in html and 'class="highlight"' in html
    assert "evil" not in html and "admin" not in html


def test_code_has_numbered_anchored_lines() -> None:
    html = render_code("import os\nprint(os)\n", "script.py")
    assert '<tr id="L2"><td class="ln"><a href="#L2">2</a></td>' in html
    assert '<span class="kn">import</span>' in html
    assert 'id="L3"' not in html


def test_text_is_escaped() -> None:
    html = render_text("<script>alert(1)</script>\nline 2")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'id="L2"' in html


def test_ansi_colours() -> None:
    html = ansi_to_html("\x1b[31mError\x1b[0m: <bad>\x1b[2K")
    assert html == '<span class="ansi-red">Error</span>: &lt;bad&gt;'


def _notebook(cells: list[dict[str, Any]], **metadata: Any) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells})


def _code(outputs: list[dict[str, Any]], source: str = "x", **extra: Any) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "id": "c",
        "metadata": {},
        "execution_count": 7,
        "source": source,
        "outputs": outputs,
        **extra,
    }


def test_notebook_outputs() -> None:
    html = render_notebook(
        _notebook(
            [
                {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# Hi $x_1$"},
                _code(
                    [
                        {"output_type": "stream", "name": "stdout", "text": "out\n"},
                        {
                            "output_type": "error",
                            "ename": "E",
                            "evalue": "v",
                            "traceback": ["\x1b[31mTraceback\x1b[0m"],
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"application/javascript": "alert(1)"},
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "1"}},
                        },
                        {
                            "output_type": "execute_result",
                            "execution_count": 7,
                            "metadata": {},
                            "data": {"text/markdown": "**bold**"},
                        },
                    ],
                    source="import os",
                ),
            ],
            language_info={"name": "python"},
        ),
        LINKS,
    )
    assert "In&nbsp;[7]:" in html
    assert '<span class="kn">import</span>' in html
    assert '<pre class="nb-stream nb-stdout">out\n</pre>' in html
    assert '<span class="ansi-red">Traceback</span>' in html
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html
    assert "JavaScript output (not rendered)" in html
    assert "interactive widget (not rendered)" in html
    assert "<strong>bold</strong>" in html
    assert '<span class="math-inline">x_1</span>' in html


def test_notebook_injection_points() -> None:
    """The nbconvert CVE-2021-32862 family: every notebook field that reaches the page."""
    evil = '"><script>alert(1)</script><img src=x onerror=alert(1)>'
    html = render_notebook(
        _notebook(
            [
                {"cell_type": "markdown", "id": "m", "metadata": {"tags": [evil]}, "source": "x"},
                _code(
                    [
                        {
                            "output_type": "display_data",
                            "metadata": {
                                "filenames": {"image/png": evil},
                                "image/png": {"width": evil, "height": 10},
                            },
                            "data": {"image/png": "iVBORw0KGgo="},
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"image/png": evil},
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"image/svg+xml": "<svg><script>alert(1)</script></svg>"},
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"text/html": evil},
                        },
                        {"output_type": "stream", "name": evil, "text": evil},
                    ],
                ),
            ],
            title=evil,
            language_info={"name": evil},
            widgets={"application/vnd.jupyter.widget-state+json": {"state": evil}},
        ),
        LINKS,
    )
    assert_inert(html)
    assert 'height="10"' in html and 'width="' not in html
    assert "data:image/svg+xml;base64," in html


@pytest.mark.parametrize(
    ("name", "head", "kind"),
    [
        ("a.md", b"# x", "markdown"),
        ("a.ipynb", b"{", "notebook"),
        ("a.py", b"x = 1", "code"),
        ("Makefile", b"all:", "code"),
        ("notes", b"plain words", "text"),
        ("blob", b"\x00\x01", "binary"),
        ("page.HTML", b"<p>", "html"),
        ("pic.svg", b"<svg>", "image"),
        ("doc.pdf", b"%PDF", "pdf"),
        ("song.mp3", b"ID3", "audio"),
        ("clip.webm", b"\x1a", "video"),
    ],
)
def test_kinds(name: str, head: bytes, kind: str) -> None:
    assert kind_of(name, head) == kind


def test_url_names() -> None:
    assert username(" Alice.B-2 ") == "alice.b-2"
    for bad in (
        "share",
        "api",
        "static",
        "sign-in",
        "-x",
        "a..b",
        "a/b",
        "x" * 41,
        "",
        "0b7a4a7e-4c3f-4a8e-9d0e-6f4c0f0b1a2b",
        "0b7a4a7e4c3f4a8e9d0e6f4c0f0b1a2b",
    ):
        with pytest.raises(BadRequest):
            username(bad)
    assert project_name("thesis-2026") == "thesis-2026"
    with pytest.raises(BadRequest):
        project_name("raw")
    assert slugify("My Notes (final).md") == "my-notes-final.md"
    assert slugify("...") == "item"
