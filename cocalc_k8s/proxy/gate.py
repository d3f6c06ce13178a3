"""The content origin's gate: for each request, who asks, may they, and where it goes.

Credentials accepted here are the content origin's own (never the hub's session):

- the `cocalc_content` cookie, scoped to one project's path, holding a signed grant
  (account, project, expiry, the session or key it came from) obtained through a redirect
  from the hub origin (`/content-auth` there, `/{project_id}/_cocalc/auth` here); it is
  refused once that session or key is revoked (cached answers, dropped through NOTIFY);
- `Authorization: Bearer <API key>`, for scripts.

Either way, the account must still be a collaborator (or an admin); the role is cached for
a few seconds and dropped at once when the project's members change. WebSockets through
here are registered with the hub's live connections, closed when either is revoked.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, quote, urlsplit

from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.backends.base import AgentAddress
from cocalc_k8s.core import content_tokens
from cocalc_k8s.core.content_origin import ContentOrigins
from cocalc_k8s.core.errors import DomainError
from cocalc_k8s.core.identity import Credential
from cocalc_k8s.core.jupyter_identity import HEADER as IDENTITY_HEADER
from cocalc_k8s.core.redirect_targets import local_target
from cocalc_k8s.core.server_credentials import request_headers
from cocalc_k8s.proxy import messages
from cocalc_k8s.proxy.access import AccessCache
from cocalc_k8s.proxy.decisions import Allow, Decision, Respond
from cocalc_k8s.proxy.jupyter_identities import JupyterIdentities
from cocalc_k8s.proxy.jupyter_saves import saved_path
from cocalc_k8s.proxy.messages import RequestHead
from cocalc_k8s.proxy.routing import Route, canonical_target, parse_route
from cocalc_k8s.proxy.server_pages import server_failed
from cocalc_k8s.proxy.upstream import agent_upstream, upstream_for
from cocalc_k8s.services.activity import ActivityRecorder
from cocalc_k8s.services.api_keys import ApiKeyService
from cocalc_k8s.services.history.service import HistoryService
from cocalc_k8s.services.lifecycle import LifecycleManager
from cocalc_k8s.services.live_connections import LiveConnections

T = TypeVar("T")
COOKIE = "cocalc_content"
AUTH_PATH = "/_cocalc/auth"
JUPYTER_SERVERS = frozenset({"jupyter", "jupyterlab"})
ROUTE_CACHE_TARGET = 1024  # longer request targets are parsed each time (bounds the cache)


@functools.lru_cache(maxsize=1024)
def _cached_route(target: str) -> Route:
    return parse_route(target)


def _route(target: str) -> Route:
    """Pages and their polling ask for the same URLs over and over, and parsing one (its
    project id above all) was a good part of the gate's work per request."""
    if len(target) > ROUTE_CACHE_TARGET:
        return parse_route(target)
    return _cached_route(target)


@dataclass
class ContentGate:
    secret: bytes
    hub_url: str  # the hub's origin, for redirects to sign in and to authorise
    secure_cookies: bool
    access: AccessCache
    live: LiveConnections
    api_keys: ApiKeyService
    lifecycle: LifecycleManager
    activity: ActivityRecorder
    agents: AgentClient
    identities: JupyterIdentities
    history: HistoryService | None = None  # TimeTravel: who saved through Jupyter
    # Set once the content origin is bound (one shared origin, or one per project).
    origins: ContentOrigins = field(default_factory=lambda: ContentOrigins(""))
    _named: dict[tuple[str, str | None, str], tuple[int, str]] = field(default_factory=dict)
    _pending: dict[Hashable, asyncio.Future[Any]] = field(default_factory=dict)

    async def __call__(self, head: RequestHead) -> Decision:
        target = head.target.decode("latin-1")
        try:
            if target.split("?", 1)[0].endswith(AUTH_PATH):
                return self._exchange(head, target)
            route = _route(target)
        except DomainError as exc:
            return _error(head, exc.status, exc.message)
        if not self.origins.serves(head.get(b"host"), route.project_id):
            # Another project's origin (or none): the content lives on its own.
            return _redirect(self.origins.url_for(route.project_id) + target, status=307)
        canonical = canonical_target(route, target)
        if canonical is not None:
            return _redirect(canonical, status=307)
        refusal = self._refusal_by_origin(head, route)
        if refusal is not None:
            return _error(head, 403, refusal)
        authorised_at = time.monotonic()
        who = await self._account(head, route)
        if who is None:
            return self._sign_in(head, route, target)
        account_id = who[0]
        if await self.access.role(account_id, route.project_id) is None:
            return _error(head, 404, "no such project")
        if not self.origins.per_project and _from_another_project(head, route):
            return _error(head, 403, "a page of another project cannot use this project")
        if not _by_api_key(head) and _riding_the_cookie(head):
            return _error(head, 403, "a page of another site cannot use this project")
        return await self._forward(head, route, who, authorised_at)

    def _refusal_by_origin(self, head: RequestHead, route: Route) -> str | None:
        """Why the content-origin mode refuses this request, if it does. An origin per
        project: a browser's WebSocket must come from a page of the project's own origin
        (browsers send the content cookie with another project's WebSocket too, and always
        its Origin). A shared origin: no Service Worker script is served, since one
        project's worker would share the origin, and its storage, with every other."""
        if self.origins.per_project:
            if not head.upgrade or _by_api_key(head):
                return None
            origin = head.get(b"origin")
            if origin is None or self.origins.is_own(origin, route.project_id):
                return None  # not a browser, or the project's own page
            return "a WebSocket from a page of another origin cannot use this project"
        if head.get(b"service-worker") is not None:
            return "no Service Workers on a content origin shared by all projects"
        return None

    async def _account(
        self, head: RequestHead, route: Route
    ) -> tuple[uuid.UUID, Credential] | None:
        if _by_api_key(head):
            key = (head.get(b"authorization") or b"")[7:].decode("latin-1")
            principal = await self._shared(key, lambda: self.api_keys.principal(key))
            return (principal.account_id, Credential.of(principal)) if principal else None
        cookie = head.get(b"cookie")
        if not cookie:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie.decode("latin-1"))
        except Exception:  # a malformed Cookie header is no credential
            return None
        morsel = jar.get(COOKIE)
        if morsel is None:
            return None
        grant = content_tokens.verify(self.secret, morsel.value, "cookie")
        if grant is None or grant.project_id != route.project_id:
            return None
        if not await self.live.status.valid(grant.account_id, grant.credential):
            return None  # signed out, password changed, banned, key deleted: sign in again
        return grant.account_id, grant.credential

    async def _forward(
        self,
        head: RequestHead,
        route: Route,
        who: tuple[uuid.UUID, Credential],
        authorised_at: float,
    ) -> Decision:
        account_id, granted_by = who  # what let the request in: revoking it ends tunnels
        address = self.lifecycle.backend.address(route.project_id)
        if address is None and route.name is not None:
            # A named server of a stopped project: start the project and carry on.
            try:
                address = await self.lifecycle.agent(
                    route.project_id,
                    wait=90,
                    account_id=account_id,
                    reason=f"opened {route.name}",
                )
            except DomainError as exc:
                return _error(head, exc.status, exc.message)
        if address is None:
            return _not_running(head, route, self.hub_url)
        self.activity.touch(route.project_id)

        def track(close: Callable[[], None]) -> Callable[[], None]:
            return self.live.register(
                "proxy",
                account_id,
                granted_by,
                route.project_id,
                close,
                authorised_at=authorised_at,
            )

        if route.kind == "raw":
            auth = (b"Authorization", b"Bearer " + address.token.encode())
            own = self.origins.per_project
            raw = messages.OWN_ORIGIN_RAW if own else messages.SHARED_ORIGIN_RAW
            return Allow(route, agent_upstream(address), route.upstream_path, [auth], raw)
        port = route.port
        credential: list[tuple[bytes, bytes]] = []
        if port is None:
            try:
                port, token = await self._named_port(route, address)
            except DomainError as exc:
                page = server_failed(head, route, self.hub_url, exc.status, exc.message)
                return Respond(page)
            # The server's own credential, supplied here, never to the browser.
            credential = request_headers(route.name or "", token)
            if route.name in JUPYTER_SERVERS:  # and who asks, signed by the hub
                identity = await self.identities.header(account_id, route.project_id)
                credential.append((IDENTITY_HEADER, identity))
                saved = saved_path(head.method, route)
                if saved is not None and self.history is not None:
                    self.history.attribute(route.project_id, saved, account_id)
        elif not await self._shared(
            (route.project_id, port),
            lambda: self.lifecycle.backend.serves_port(route.project_id, port),
        ):
            return _error(head, 403, f"port {port} is not served by this project")
        upstream = upstream_for(address, port)
        policy = messages.OWN_ORIGIN if self.origins.per_project else messages.SHARED_ORIGIN
        return Allow(
            route,
            upstream,
            route.upstream_path,
            credential,
            policy=policy,
            on_tunnel=track,
            on_unreachable=self._forget_named(route, address) if route.name else None,
        )

    async def _shared(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`; requests that arrive while one with the same key is under way wait for
        its answer instead. The backend and the API keys cache their answers briefly; when
        an answer expires under load, every request in flight would otherwise make a check
        of its own (a database query, a read of /proc, a call to the cluster)."""
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return cast(T, await asyncio.shield(pending))
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled, not the check
            return await call()
        pending = self._pending[key] = asyncio.get_running_loop().create_future()
        try:
            answer = await call()
        except BaseException:
            pending.cancel()  # whoever waits makes a check of its own
            raise
        finally:
            del self._pending[key]
        pending.set_result(answer)
        return answer

    async def _named_port(self, route: Route, address: AgentAddress) -> tuple[int, str]:
        """The port of a named server, started by the agent on first use, and the token it
        demands (see `cocalc_k8s.core.server_credentials`); Jupyter is also given the key
        that verifies the identities this gate adds."""
        base_url = f"/{route.project_id}/port/{route.name}/" if route.kind == "port" else "/"
        key = (address.token, route.name, base_url)
        known = self._named.get(key)
        if known is None:
            body = {"base_url": base_url}
            if route.name in JUPYTER_SERVERS:
                body["identity_key"] = self.identities.public_key
                body["project_id"] = str(route.project_id)
            answer = await self._shared(
                key,
                lambda: self.agents.call(
                    address, "POST", f"/servers/{route.name}", body=body, seconds=90
                ),
            )
            known = self._named[key] = (int(answer["port"]), str(answer.get("token") or ""))
        return known

    def _forget_named(self, route: Route, address: AgentAddress) -> Callable[[], None]:
        """What to do when the server's port does not answer (it exited): ask the agent
        again next time, which starts it anew."""
        base_url = f"/{route.project_id}/port/{route.name}/" if route.kind == "port" else "/"

        def forget() -> None:
            self._named.pop((address.token, route.name, base_url), None)

        return forget

    def _sign_in(self, head: RequestHead, route: Route, target: str) -> Decision:
        if not messages.wants_html(head):
            return _error(head, 401, "sign in: open this URL in a browser, or use an API key")
        location = f"{self.hub_url}/content-auth?project_id={route.project_id}&next={quote(target)}"
        return _redirect(location)

    def _exchange(self, head: RequestHead, target: str) -> Decision:
        """`/{project_id}/_cocalc/auth?token=…&next=…`: trade the hub's one-minute grant for
        this origin's cookie, scoped to the project's path."""
        path, _, query = target.partition("?")
        params = parse_qs(query)
        token = params.get("token", [""])[0]
        next_path = params.get("next", ["/"])[0]
        grant = content_tokens.verify(self.secret, token, "exchange")
        prefix = path[: -len(AUTH_PATH)]
        if (
            grant is None
            or prefix != f"/{grant.project_id}"
            or not self.origins.serves(head.get(b"host"), grant.project_id)
        ):
            return Respond(
                messages.simple_response(403, b"this sign-in link is invalid or expired")
            )
        if local_target(next_path) is None or not next_path.startswith(prefix + "/"):
            next_path = prefix + "/"
        cookie = content_tokens.issue(
            self.secret,
            "cookie",
            grant.account_id,
            grant.project_id,
            credential=grant.credential,
            lifetime=content_tokens.COOKIE_SECONDS,
        )
        attributes = (
            f"Path={prefix}/; Max-Age={content_tokens.COOKIE_SECONDS}; HttpOnly; SameSite=Lax"
        )
        if self.secure_cookies:
            attributes += "; Secure"
        set_cookie = f"{COOKIE}={cookie}; {attributes}".encode()
        return _redirect(next_path, [(b"Set-Cookie", set_cookie)])


def _from_another_project(head: RequestHead, route: Route) -> bool:
    """When all projects share the content origin, a page of project A could script
    project B as the visitor (with an origin per project, the browser keeps them apart).
    Fetch Metadata tells same-origin requests apart: one is allowed only from a page of
    the same project (its Referer), never from another project's page or one that hides
    where it comes from."""
    if head.get(b"sec-fetch-site") != b"same-origin":
        return False  # typed, bookmarked, from the hub (same-site), or not a browser
    referer = head.get(b"referer")
    if not referer:
        return True
    return not urlsplit(referer.decode("latin-1")).path.startswith(f"/{route.project_id}/")


def _by_api_key(head: RequestHead) -> bool:
    return (head.get(b"authorization") or b"")[:10].lower() == b"bearer ck_"


def _riding_the_cookie(head: RequestHead) -> bool:
    """A request from a page of another origin that would use the visitor's content
    cookie (same-site pages, such as another project's origin, get it sent): only a
    plain link followed (a GET or HEAD navigation) may, so no page elsewhere can read
    from a project or change anything in it as its visitor."""
    site = head.get(b"sec-fetch-site")
    if site not in (b"same-site", b"cross-site"):
        return False  # same origin (checked above), typed or bookmarked, or not a browser
    navigation = head.get(b"sec-fetch-mode") == b"navigate"
    return not (navigation and head.method in (b"GET", b"HEAD"))


def _redirect(
    location: str, headers: list[tuple[bytes, bytes]] | None = None, *, status: int = 302
) -> Respond:
    extra = [(b"Location", location.encode("latin-1", "replace")), *(headers or [])]
    return Respond(messages.simple_response(status, b"", headers=extra))


def _error(head: RequestHead, status: int, message: str) -> Respond:
    return Respond(messages.error_response(head, status, message))


def _not_running(head: RequestHead, route: Route, hub_url: str) -> Respond:
    message = "the project is not running"
    if not messages.wants_html(head):
        return _error(head, 503, message)
    page = (
        "<!doctype html><meta charset=utf-8><title>Project not running</title>"
        "<h1>This project is not running</h1>"
        f'<p><a href="{hub_url}/projects/{route.project_id}">Open the project to start it</a>, '
        "then reload this page.</p>"
    )
    return Respond(
        messages.simple_response(503, page.encode(), content_type=b"text/html; charset=utf-8")
    )
