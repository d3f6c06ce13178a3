"""Every long-lived connection of this hub, keyed by what authorised it, closed the moment
that is revoked: the same revocation the API uses, on every hub.

Contract, for each kind of long-lived connection (terminal WebSockets, progress streams,
WebSockets through the proxy, Socket.IO sockets of the realtime server):

    unregister = live.register(kind, account_id, credential, project_id, close,
                               authorised_at=t)

- `kind`: a short label, counted for the admin's live stats ("terminal", "progress",
  "proxy", "realtime", ...).
- `account_id`, `credential`: who the connection acts for and the session or API key
  that let it in (`Credential.of(principal)`; on the content origin, the credential its
  cookie was granted from).
- `project_id`: the project it reaches (its membership is re-checked too), or None for an
  account-wide connection (only the credential is re-checked).
- `close`: a plain function, called at most once, on the event loop, when access ends. It
  must not block: set an Event or schedule the async close. By then the registration is
  gone already.
- `authorised_at`: `time.monotonic()` taken before the credential was checked. A
  revocation that arrived between that check and `register` is not lost: the connection
  is re-checked at once. Omit it only when nothing awaited in between.
- `unregister()`: call it when the connection ends, however it ends (idempotent).

What closes a connection: on `cocalc_credentials` (sign-out, session revoked, password
change ending other sessions, API key deleted, account banned) every connection of that
account is re-checked against the database; on `cocalc_project_access` (collaborator
removed, project deleted) every connection to that project. Local changes arrive the same
way (a hub hears its own NOTIFY). When the listener reconnects, and every `SWEEP_EVERY`
seconds (expired sessions, changes made behind the hub's back), everything is re-checked.
A check that fails for want of a database keeps the connections until the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cocalc_k8s.core.identity import Credential
from cocalc_k8s.core.tasks import cancel
from cocalc_k8s.services.connections import Connections
from cocalc_k8s.services.credential_status import CredentialStatus
from cocalc_k8s.services.projects import ProjectService

log = logging.getLogger(__name__)

SWEEP_EVERY = 30.0
_EVENTS_KEPT = 50_000  # recent revocation times remembered, for late registrations


@dataclass(eq=False, slots=True)
class _Live:
    kind: str
    account_id: uuid.UUID
    credential: Credential
    project_id: uuid.UUID | None
    close: Callable[[], None]
    uncount: Callable[[], None]


class LiveConnections:
    def __init__(
        self,
        status: CredentialStatus,
        projects: ProjectService,
        *,
        connections: Connections | None = None,
        sweep_every: float = SWEEP_EVERY,
    ) -> None:
        self.status = status
        self.projects = projects
        self.connections = connections or Connections()
        self.sweep_every = sweep_every
        self._by_account: dict[uuid.UUID, set[_Live]] = {}
        self._by_project: dict[uuid.UUID, set[_Live]] = {}
        self._last_event: dict[uuid.UUID, float] = {}  # account or project id -> when
        self._reset_at = time.monotonic()  # events may have been missed until then
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def register(
        self,
        kind: str,
        account_id: uuid.UUID,
        credential: Credential,
        project_id: uuid.UUID | None,
        close: Callable[[], None],
        *,
        authorised_at: float | None = None,
        counted: bool = True,
    ) -> Callable[[], None]:
        """Watch one connection; returns the function that forgets it (see the module).
        `counted=False`: another registration of the same connection (a socket that
        reaches several projects registers once per project), not counted again."""
        live = _Live(
            kind,
            account_id,
            credential,
            project_id,
            close,
            self.connections.opened(kind, account_id) if counted else _nothing,
        )
        self._by_account.setdefault(account_id, set()).add(live)
        if project_id is not None:
            self._by_project.setdefault(project_id, set()).add(live)
        if authorised_at is not None and self._changed_since(live, authorised_at):
            self._spawn([live])
        return lambda: self._forget(live)

    def _changed_since(self, live: _Live, since: float) -> bool:
        last = max(
            self._reset_at,
            self._last_event.get(live.account_id, 0.0),
            self._last_event.get(live.project_id, 0.0) if live.project_id else 0.0,
        )
        return last >= since

    def _forget(self, live: _Live) -> None:
        for index, key in (
            (self._by_account, live.account_id),
            (self._by_project, live.project_id),
        ):
            if key is None:
                continue
            entries = index.get(key)
            if entries is not None and live in entries:
                entries.discard(live)
                if not entries:
                    del index[key]
                if index is self._by_account:
                    live.uncount()

    def _end(self, live: _Live) -> None:
        if live not in self._by_account.get(live.account_id, ()):
            return  # already ended or let go
        self._forget(live)
        try:
            live.close()
        except Exception:
            log.exception("closing a revoked %s connection failed", live.kind)

    # NOTIFY callbacks (and the listener's reconnection).

    def account_changed(self, payload: str) -> None:
        """`cocalc_credentials`: re-check every connection of the account now."""
        try:
            account_id = uuid.UUID(payload)
        except ValueError:
            self.recheck_all()
            return
        self._note(account_id)
        self._spawn(self._by_account.get(account_id, ()))

    def members_changed(self, payload: str) -> None:
        """`cocalc_project_access`: re-check every connection to the project now."""
        try:
            project_id = uuid.UUID(payload)
        except ValueError:
            self.recheck_all()
            return
        self._note(project_id)
        self._spawn(self._by_project.get(project_id, ()))

    def missed_events(self) -> None:
        """The listener lost its connection: registrations from now on are re-checked."""
        self._reset_at = time.monotonic()

    def recheck_all(self) -> None:
        """The listener is back (it may have missed events), or a payload was unreadable."""
        self._reset_at = time.monotonic()
        self._spawn([live for lives in self._by_account.values() for live in lives])

    def _note(self, key: uuid.UUID) -> None:
        if len(self._last_event) >= _EVENTS_KEPT:
            self._last_event.clear()
            self._reset_at = time.monotonic()
        self._last_event[key] = time.monotonic()

    # Checks.

    def _spawn(self, lives: Iterable[_Live]) -> None:
        batch = list(lives)
        if batch:
            task = asyncio.get_running_loop().create_task(self._recheck(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _recheck(self, lives: list[_Live]) -> None:
        """Close each connection whose credential or membership is gone. One query per
        distinct credential and per distinct (account, project)."""
        credentials: dict[tuple[uuid.UUID, Credential], bool] = {}
        roles: dict[tuple[uuid.UUID, uuid.UUID], bool] = {}
        for live in lives:
            try:
                key = (live.account_id, live.credential)
                if key not in credentials:
                    credentials[key] = await self.status.check(*key)
                allowed = credentials[key]
                if allowed and live.project_id is not None:
                    member = (live.account_id, live.project_id)
                    if member not in roles:
                        roles[member] = await self.projects.role_of(*member) is not None
                    allowed = roles[member]
            except Exception as exc:  # the database is away: keep them, check again later
                log.warning("could not re-check %d open connections: %s", len(lives), exc)
                return
            if not allowed:
                self._end(live)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            await self._recheck([live for lives in self._by_account.values() for live in lives])

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        await cancel(self._sweeper)
        for task in list(self._tasks):
            await cancel(task)

    def count(self) -> int:
        return sum(len(lives) for lives in self._by_account.values())


def _nothing() -> None:
    pass
