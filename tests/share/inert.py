"""`assert_inert(html)`: no element or attribute of the HTML can run script."""

from __future__ import annotations

from html.parser import HTMLParser

ACTIVE_TAGS = {
    "script",
    "iframe",
    "object",
    "embed",
    "base",
    "meta",
    "style",
    "link",
    "form",
    "frame",
    "frameset",
    "applet",
    "svg",
    "math",
    "template",
    "noscript",
}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcset"}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = "".join((value or "").split()).lower()
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}>")
            if name in URL_ATTRIBUTES and (
                value.startswith(("javascript:", "vbscript:"))
                or (value.startswith("data:") and not value.startswith("data:image/"))
            ):
                self.problems.append(f"<{tag} {name}={value[:30]}>")


def assert_inert(html: str) -> None:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert not checker.problems, (checker.problems, html[:2000])
