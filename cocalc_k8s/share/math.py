"""Math in markdown: `$…$` and `$$…$$` taken out *before* markdown sees the text, so that
`_`, `*` and `\\` inside a formula survive, then put back as escaped TeX in
`<span class="math-inline">` / `<div class="math-display">` (pure).

Why KaTeX in the browser and not MathML on the server: the TeX reaches the page only as
escaped text, so the sanitiser never has to admit MathML (the `math`/`svg` namespace
confusion behind several mutation-XSS bugs stays out of the allow-list). The vendored
KaTeX script (`static/vendor/katex-*`, loaded from the hub's origin, so the CSP stays
`script-src 'self'`) typesets it with `trust: false`, which refuses `\\href`,
`\\includegraphics` and `\\htmlData`; it builds DOM nodes, whose styles the CSP allows.

Code is left alone: fenced blocks (``` or ~~~) and inline code spans are skipped. `\\$`
is a literal dollar sign. A `$` followed by a space or digit does not open inline math
(so "costs $5 and $6" stays text).
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable

_FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})")
_MATH = re.compile(
    r"(?P<code>`+)(?P<code_body>.*?)(?P=code)"  # an inline code span
    r"|\\\$"  # an escaped dollar
    r"|\$\$(?P<display>.+?)\$\$"
    r"|\$(?P<inline>[^\s$\d](?:[^$\n]*?[^\s\\$])?)\$",
    re.DOTALL,
)
MAX_FORMULAS = 10_000


def extract_math(text: str) -> tuple[str, Callable[[str], str]]:
    """(text with placeholders, a function that puts the formulas back into HTML)."""
    token = secrets.token_hex(8)
    formulas: list[tuple[bool, str]] = []

    def replace(match: re.Match[str]) -> str:
        if match.group("code") is not None or match.group(0) == "\\$":
            return match.group(0)
        if len(formulas) >= MAX_FORMULAS:
            return match.group(0)
        display = match.group("display")
        formulas.append((display is not None, display if display is not None else match["inline"]))
        return f"MATH{token}X{len(formulas) - 1}X"

    out: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        marker = _FENCE.match(line)
        if fence is None and marker:
            out.append(_MATH.sub(replace, "".join(prose)))
            prose = []
            fence = marker.group(1)[0] * len(marker.group(1))
            out.append(line)
        elif fence is not None:
            out.append(line)
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
        else:
            prose.append(line)
    out.append(_MATH.sub(replace, "".join(prose)))
    placeholder = re.compile(f"MATH{token}X(\\d+)X")

    def restore(rendered: str) -> str:
        def put_back(match: re.Match[str]) -> str:
            display, tex = formulas[int(match.group(1))]
            escaped = html.escape(tex.strip())
            if display:
                return f'<span class="math-display">{escaped}</span>'
            return f'<span class="math-inline">{escaped}</span>'

        return placeholder.sub(put_back, rendered)

    return "".join(out), restore
