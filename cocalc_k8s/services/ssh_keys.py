"""SSH public keys: an account's (they open every project the account collaborates on) and
one project's (they open that project, acting for whoever added them, while that person
is still a collaborator).

A key is a credential like an API key: deleting it sends `cocalc_credentials` for the
account it acts for, so the SSH sessions it opened close at once on every hub
(`LiveConnections`, `Credential("ssh_key", key id)`). Who may log in to which project is
`authorise`: one query, no cache, at every login.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String as SqlString
from sqlalchemy import and_, cast, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cocalc_k8s.core import validation
from cocalc_k8s.core.errors import BadRequest, Conflict, NotFound
from cocalc_k8s.core.ssh_public_keys import parse_public_key
from cocalc_k8s.db.models import Account, Project, ProjectUser, SshKey
from cocalc_k8s.db.notify import CREDENTIALS, notify
from cocalc_k8s.services import events

MAX_KEYS = 100  # per account, and per project
SHORT_LOGIN = re.compile(r"[0-9a-f]{8}")
NO_SUCH_KEY = "no such SSH key"


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """A key that may open a project: which key, and the account it acts for."""

    key_id: uuid.UUID
    account_id: uuid.UUID
    project_key: bool


def _parse_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(NO_SUCH_KEY) from None


_COLUMNS = (
    SshKey.id,
    SshKey.name,
    SshKey.fingerprint,
    SshKey.public_key,
    SshKey.created,
    SshKey.last_used,
)


class SshKeyService:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(
        self,
        account_id: uuid.UUID,
        *,
        name: Any,
        public_key: Any,
        project_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """A new key of the account (`project_id` None) or of one project, added by
        `account_id` (the caller checked that it is a collaborator). Conflict when the
        same key is already there."""
        clean_name = validation.name(name)
        key = parse_public_key(public_key)
        key_id = uuid.uuid4()
        scope = SshKey.project_id == project_id if project_id else SshKey.project_id.is_(None)
        owner = SshKey.project_id == project_id if project_id else SshKey.account_id == account_id
        async with self.engine.begin() as conn:
            count = (await conn.execute(select(func.count()).where(owner, scope))).scalar_one()
            if count >= MAX_KEYS:
                raise BadRequest(f"at most {MAX_KEYS} SSH keys here")
            same = await conn.execute(
                select(SshKey.id).where(owner, scope, SshKey.fingerprint == key.fingerprint)
            )
            if same.first() is not None:
                raise Conflict("this SSH key is already added here")
            row = (
                await conn.execute(
                    insert(SshKey)
                    .values(
                        id=key_id,
                        account_id=account_id,
                        project_id=project_id,
                        name=clean_name,
                        public_key=key.openssh,
                        fingerprint=key.fingerprint,
                    )
                    .returning(*_COLUMNS)
                )
            ).one()
            await events.record(
                conn,
                "ssh_key.added",
                account_id=account_id,
                project_id=project_id,
                key_id=str(key_id),
                fingerprint=key.fingerprint,
            )
        return dict(row._mapping)

    async def list_account(self, account_id: uuid.UUID) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*_COLUMNS)
                .where(SshKey.account_id == account_id, SshKey.project_id.is_(None))
                .order_by(SshKey.created)
            )
            return [dict(row._mapping) for row in rows]

    async def list_project(self, project_id: uuid.UUID) -> list[dict[str, Any]]:
        """The project's own keys, each with who added it (`added_by`: {id, name})."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*_COLUMNS, Account.account_id, Account.name.label("added_by_name"))
                .join(Account, Account.account_id == SshKey.account_id)
                .where(SshKey.project_id == project_id)
                .order_by(SshKey.created)
            )
            keys = []
            for row in rows:
                key = {c.key: row._mapping[c.key] for c in _COLUMNS}
                key["added_by"] = {"id": row.account_id, "name": row.added_by_name}
                keys.append(key)
            return keys

    async def delete(
        self, account_id: uuid.UUID, key_id: str, *, project_id: uuid.UUID | None = None
    ) -> None:
        """Delete one of the account's keys (`project_id` None), or one of the project's
        (any collaborator may: the caller checked). NotFound for anything else."""
        parsed = _parse_id(key_id)
        where = (
            [SshKey.project_id == project_id]
            if project_id
            else [SshKey.account_id == account_id, SshKey.project_id.is_(None)]
        )
        async with self.engine.begin() as conn:
            holder = (
                await conn.execute(
                    delete(SshKey).where(SshKey.id == parsed, *where).returning(SshKey.account_id)
                )
            ).scalar_one_or_none()
            if holder is None:
                raise NotFound(NO_SUCH_KEY)
            # Sessions the key opened act for its holder: re-check theirs on every hub.
            await notify(conn, CREDENTIALS, str(holder))
            await events.record(
                conn,
                "ssh_key.deleted",
                account_id=account_id,
                project_id=project_id,
                key_id=str(parsed),
            )

    async def holder(self, key_id: str) -> uuid.UUID | None:
        """The account a key acts for, by its id (`Credential.ref`): None once the key is
        deleted or that account banned. What open SSH sessions are re-checked against."""
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            return None
        async with self.engine.connect() as conn:
            account_id: uuid.UUID | None = (
                await conn.execute(
                    select(SshKey.account_id)
                    .join(Account, Account.account_id == SshKey.account_id)
                    .where(SshKey.id == parsed, Account.banned.is_(None))
                )
            ).scalar_one_or_none()
        return account_id

    async def project_for_login(self, login: str) -> uuid.UUID | None:
        """The live project an SSH user name names: its id, or the first 8 hex digits of
        it when exactly one live project starts with them."""
        login = login.strip().lower()
        try:
            return await self._live_project(uuid.UUID(login))
        except ValueError:
            pass
        if not SHORT_LOGIN.fullmatch(login):
            return None
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    select(Project.project_id)
                    .where(
                        cast(Project.project_id, SqlString).like(login + "%"),
                        Project.deleted.is_(None),
                    )
                    .limit(2)
                )
            ).all()
        return found[0].project_id if len(found) == 1 else None

    async def _live_project(self, project_id: uuid.UUID) -> uuid.UUID | None:
        async with self.engine.connect() as conn:
            found: uuid.UUID | None = (
                await conn.execute(
                    select(Project.project_id).where(
                        Project.project_id == project_id, Project.deleted.is_(None)
                    )
                )
            ).scalar_one_or_none()
        return found

    async def authorise(self, project_id: uuid.UUID, fingerprint: str) -> KeyGrant | None:
        """The key with this fingerprint that may open the project, if any: an account key
        of a collaborator, or a key of this project whose adder is still a collaborator;
        never a banned account's. One query."""
        query = (
            select(SshKey.id, SshKey.account_id, SshKey.project_id)
            .join(Account, Account.account_id == SshKey.account_id)
            .join(
                ProjectUser,
                and_(
                    ProjectUser.account_id == SshKey.account_id,
                    ProjectUser.project_id == project_id,
                ),
            )
            .join(Project, Project.project_id == project_id)
            .where(
                SshKey.fingerprint == fingerprint,
                or_(SshKey.project_id.is_(None), SshKey.project_id == project_id),
                Account.banned.is_(None),
                Project.deleted.is_(None),
            )
            .order_by(SshKey.created)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return KeyGrant(row.id, row.account_id, row.project_id is not None)

    async def logged_in(
        self, grant: KeyGrant, project_id: uuid.UUID, *, address: str, what: str
    ) -> None:
        """Record a login in the project's log and the key's last use."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(SshKey).where(SshKey.id == grant.key_id).values(last_used=datetime.now(UTC))
            )
            await events.record(
                conn,
                "ssh.login",
                account_id=grant.account_id,
                project_id=project_id,
                key_id=str(grant.key_id),
                address=address,
                session=what,
            )
