"""The headers of share responses.

Pages get a CSP stricter than the hub's: nothing but the hub's own scripts and styles
(no inline script at all, so no nonce is needed), images from the hub or `data:` (notebook
outputs), media and frames only from the hub (PDF viewer, the sandboxed HTML preview).
Raw files and the HTML preview get `sandbox`: an opaque origin, no script, no cookies.
"""

from __future__ import annotations

SHARE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; media-src 'self'; frame-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
RAW_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "media-src 'self'"
)
# Framed by a share page (HTML preview, PDF viewer): only the hub's own pages may frame it.
FRAMED_CSP = RAW_CSP + "; frame-ancestors 'self'"
ACTIVE_TYPES = frozenset(
    {"text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml"}
)


def page_headers(*, noindex: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": SHARE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }
    if noindex:
        headers["X-Robots-Tag"] = "noindex, nofollow"
    return headers
