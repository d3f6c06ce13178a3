"""ANSI-coloured terminal text (notebook tracebacks) as escaped HTML with colour classes
(pure). Only SGR colour and bold codes are kept; every other escape sequence is dropped."""

from __future__ import annotations

import html
import re

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_OTHER = re.compile(r"\x1b(\[[0-9;?]*[A-Za-ln-z]|\][^\x07]*\x07|.)")
COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")


def _classes(codes: list[int], state: dict[str, str]) -> None:
    for code in codes or [0]:
        if code == 0:
            state.clear()
        elif code == 1:
            state["bold"] = "ansi-bold"
        elif code == 22:
            state.pop("bold", None)
        elif 30 <= code <= 37:
            state["fg"] = f"ansi-{COLOURS[code - 30]}"
        elif 90 <= code <= 97:
            state["fg"] = f"ansi-{COLOURS[code - 90]} ansi-bright"
        elif code == 39:
            state.pop("fg", None)
        elif 40 <= code <= 47:
            state["bg"] = f"ansi-bg-{COLOURS[code - 40]}"
        elif code == 49:
            state.pop("bg", None)


def ansi_to_html(text: str) -> str:
    out: list[str] = []
    state: dict[str, str] = {}
    pos = 0
    for match in _SGR.finditer(text):
        out.append(_span(_OTHER.sub("", text[pos : match.start()]), state))
        codes = [int(c) for c in match.group(1).split(";") if c.isdigit() and len(c) < 4]
        _classes(codes, state)
        pos = match.end()
    out.append(_span(_OTHER.sub("", text[pos:]), state))
    return "".join(out)


def _span(text: str, state: dict[str, str]) -> str:
    if not text:
        return ""
    escaped = html.escape(text)
    if not state:
        return escaped
    return f'<span class="{" ".join(sorted(state.values()))}">{escaped}</span>'
