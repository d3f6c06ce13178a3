"""Source code and plain text as HTML (pure): pygments highlighting with numbered lines,
each line an anchor `#L{n}` with a link to itself. Text is escaped by pygments (or by
`html.escape` for plain text), so the output needs no sanitising."""

from __future__ import annotations

import html

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True)


def lexer_for(filename: str) -> Lexer | None:
    try:
        return get_lexer_for_filename(filename, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def lexer_named(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language.strip().lower() or "text", stripnl=False)
    except ClassNotFound:
        return None


def highlight_lines(text: str, lexer: Lexer | None) -> list[str]:
    """One HTML string per line (pygments closes its spans at every line end)."""
    if lexer is None:
        return [html.escape(line) for line in text.split("\n")]
    out: str = highlight(text, lexer, _FORMATTER)
    lines = out.split("\n")
    if lines and lines[-1] == "" and not text.endswith("\n"):
        lines.pop()
    return lines


def numbered(lines: list[str]) -> str:
    rows = "".join(
        f'<tr id="L{n}"><td class="ln"><a href="#L{n}">{n}</a></td><td class="lc">{line}</td></tr>'
        for n, line in enumerate(lines, 1)
    )
    return (
        f'<div class="code-view highlight"><table class="lines"><tbody>{rows}</tbody></table></div>'
    )


def render_code(text: str, filename: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
    return numbered(highlight_lines(text, lexer_for(filename)))


def render_text(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
    return numbered(highlight_lines(text, None))


def highlight_block(code: str, language: str) -> str:
    """A notebook code cell: highlighted, no line numbers."""
    lexer = lexer_named(language) or lexer_named("text")
    body = highlight(code, lexer, _FORMATTER) if lexer else html.escape(code)
    return f'<div class="highlight"><pre>{body}</pre></div>'
