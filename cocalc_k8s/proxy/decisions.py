"""What the content origin's gate decides for a request: forward it (`Allow`) or answer it
directly (`Respond`); the engine in `protocol` carries the decision out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cocalc_k8s.proxy.messages import OWN_ORIGIN, RequestHead, ResponsePolicy
from cocalc_k8s.proxy.routing import Route
from cocalc_k8s.proxy.upstream import Upstream


@dataclass(slots=True)
class Allow:
    """Forward the request to `upstream`, asking for `path`."""

    route: Route
    upstream: Upstream
    path: str
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    policy: ResponsePolicy = OWN_ORIGIN  # what the response head loses and gains
    on_tunnel: Callable[[Callable[[], None]], Callable[[], None]] | None = None
    on_unreachable: Callable[[], None] | None = None  # nothing answered on the upstream


@dataclass(slots=True)
class Respond:
    """Answer the client directly (an error, a redirect, a page)."""

    raw: bytes
    close: bool = False


Decision = Allow | Respond
Gate = Callable[[RequestHead], Awaitable[Decision]]
