"""The schema, as SQLAlchemy 2 models. Change it only together with an alembic migration;
a test fails when these models and the migrations disagree."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# A project's own uid on the local backend: drawn once, kept in `projects.resolved`, never
# handed out again (a sequence does not go back when a project is purged).
PROJECT_UIDS = Sequence("project_uids", minvalue=200_000, start=200_000, metadata=Base.metadata)


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Account(Base):
    __tablename__ = "accounts"

    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(Text)
    is_admin: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created: Mapped[datetime] = _now()
    last_active: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When an admin banned the account (NULL: not banned). A banned account cannot sign
    # in, and its sessions and API keys stop working at once.
    banned: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The URL name (`a-z0-9.-`, see core.url_names), for /{username}/... share URLs.
    username: Mapped[str | None] = mapped_column(String(40), unique=True)


class Session(Base):
    """A sign-in session. Only the SHA-256 of the cookie value is stored."""

    __tablename__ = "sessions"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="CASCADE"), index=True
    )
    created: Mapped[datetime] = _now()
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class ApiKey(Base):
    """A named API key. Only the SHA-256 of the key is stored, plus its display prefix."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created: Mapped[datetime] = _now()
    last_used: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SshKey(Base):
    """An SSH public key: an account's (`account_id` set: it opens every project the
    account collaborates on) or one project's (`project_id` set: it opens that project
    and acts for `account_id`, who added it, while they are still a collaborator).
    `fingerprint` is the key's SHA256 fingerprint, how a login finds it."""

    __tablename__ = "ssh_keys"
    __table_args__ = (Index("ix_ssh_keys_fingerprint", "fingerprint"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime] = _now()
    last_used: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """The audit log: who did what, when. Events with a `project_id` form that project's
    log (started, stopped, collaborator added, file uploaded ...)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_time", "time"),
        Index("ix_events_project_id_time", "project_id", "time"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _now()
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE")
    )


class Project(Base):
    """A project: a home directory plus a running environment.

    `state` is one of stopped, starting, running, stopping, failed (see the lifecycle
    manager); `resolved` keeps names fixed once chosen (pod name, volume paths) so that a
    later change of naming scheme never hides a user's files.
    """

    __tablename__ = "projects"

    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    state: Mapped[str] = mapped_column(String(16), server_default="stopped")
    state_error: Mapped[str | None] = mapped_column(Text)
    state_changed: Mapped[datetime] = _now()
    quota: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    resolved: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    created: Mapped[datetime] = _now()
    last_edited: Mapped[datetime] = _now()
    last_started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_active: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A pending start/stop/restart request. Writing it (from any process, even psql)
    # fires a NOTIFY on cocalc_project_requests through a trigger (migration 0003).
    requested: Mapped[str | None] = mapped_column(String(16))
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProjectTransition(Base):
    """Every state change of every project, with its time and reason."""

    __tablename__ = "project_transitions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE"), index=True
    )
    time: Mapped[datetime] = _now()
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)


class ProjectUser(Base):
    """Who may use a project: its owner and collaborators. `hidden` is per user."""

    __tablename__ = "project_users"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # owner | collaborator
    hidden: Mapped[bool] = mapped_column(Boolean, server_default="false")
    added: Mapped[datetime] = _now()


class SiteSetting(Base):
    """Site-wide settings an admin changes at run time (e.g. default_quotas)."""

    __tablename__ = "site_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    changed: Mapped[datetime] = _now()


class SignupToken(Base):
    """A token that lets someone sign up while sign-up is "by token". Only its SHA-256 is
    stored, plus a display prefix; `max_uses` NULL means unlimited."""

    __tablename__ = "signup_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(200), server_default="")
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="SET NULL")
    )
    created: Mapped[datetime] = _now()
    expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, server_default="0")


class Document(Base):
    """A collaborative document: one per text file of a project that has been opened in
    the editor. `seq` is the sequence of its last committed update (updates are numbered
    1, 2, ... per document, across epochs); `epoch` changes when the document is rebuilt
    from disk (clients of an older epoch must resync, never merge). `disk_hash` is the
    SHA-256 of the text last written to the file or merged from it, which is the document's
    text at `disk_seq`. (Which hub writes the file is an advisory lock, not a column: see
    services/documents/locks.py.)"""

    __tablename__ = "documents"
    __table_args__ = (Index("uq_documents_project_id_path", "project_id", "path", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE")
    )
    path: Mapped[str] = mapped_column(Text)
    epoch: Mapped[int] = mapped_column(Integer, server_default="1")
    seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created: Mapped[datetime] = _now()
    changed: Mapped[datetime] = _now()
    disk_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    disk_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")  # text at this seq


class DocumentUpdate(Base):
    """One Yjs update of a document, committed before anyone saw it. `account_id` is its
    author; NULL with `source` "disk" (a change on disk, merged as a diff) or "load" (the
    file's text when the document was built or rebuilt)."""

    __tablename__ = "document_updates"

    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="SET NULL")
    )
    source: Mapped[str] = mapped_column(String(16))  # client | disk | load
    time: Mapped[datetime] = _now()
    data: Mapped[bytes] = mapped_column(LargeBinary)


class DocumentCheckpoint(Base):
    """The merged state of a document's epoch up to update `seq` (a Yjs update): a document
    opens from its newest checkpoint plus the updates after it."""

    __tablename__ = "document_checkpoints"

    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = _now()
    data: Mapped[bytes] = mapped_column(LargeBinary)


class FileHistory(Base):
    """The TimeTravel history of one file of a project. It follows renames done through
    the hub (`path` changes); when the file is deleted `deleted` is set and the history
    stays (the "deleted files" of its folder). At most one history per path is not deleted.
    `last_version` and `last_hash` describe its newest version (appends lock this row)."""

    __tablename__ = "file_histories"
    __table_args__ = (
        Index(
            "uq_file_histories_project_id_path",
            "project_id",
            "path",
            unique=True,
            postgresql_where=text("deleted IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE")
    )
    path: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = _now()
    deleted: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_version: Mapped[int] = mapped_column(Integer, server_default="0")
    last_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class FileVersion(Base):
    """One version of a file: its text is `data` (zlib) when `base` is NULL, else `data` is
    the zlib of a diff-match-patch delta from version `base` (always `version - 1`), so
    reading a version replays at most `SNAPSHOT_EVERY` deltas (services/history/store.py).
    `authors` are account ids (empty: "disk"); `kind` is edit | disk | api | upload |
    restore | jupyter; `restored_from` the version a restore brought back."""

    __tablename__ = "file_versions"

    history_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("file_histories.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = _now()
    kind: Mapped[str] = mapped_column(String(16))
    authors: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), server_default="{}")
    size: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    base: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    restored_from: Mapped[int | None] = mapped_column(Integer)


class PublicPath(Base):
    """A published file or directory of a project (the share server).

    `id` is random (at least 128 bits, URL-safe): for an unlisted item it is the secret.
    `visibility` is listed | unlisted | signed_in | disabled; `name` is URL-safe and unique
    in its project (the last part of a vanity URL before the path inside).
    """

    __tablename__ = "public_paths"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        UniqueConstraint("project_id", "path"),
        Index("ix_public_paths_visibility_created", "visibility", "created"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE")
    )
    path: Mapped[str] = mapped_column(Text)  # relative to the home, normalised ("" = home)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, server_default="")
    license: Mapped[str] = mapped_column(String(16), server_default="none")
    visibility: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="SET NULL")
    )
    created: Mapped[datetime] = _now()
    last_edited: Mapped[datetime] = _now()
    views: Mapped[int] = mapped_column(BigInteger, server_default="0")


class ProjectUrlName(Base):
    """A project's URL name, unique among the projects of its owner."""

    __tablename__ = "project_url_names"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE"), primary_key=True
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))


class UsernameRedirect(Base):
    """A username given up: URLs under it redirect to the account's current one, until
    someone else takes the name."""

    __tablename__ = "username_redirects"

    old_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="CASCADE")
    )
    created: Mapped[datetime] = _now()


class ProjectNameRedirect(Base):
    """A project URL name given up, per owner: redirects until the owner reuses it."""

    __tablename__ = "project_name_redirects"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="CASCADE"), primary_key=True
    )
    old_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE")
    )
    created: Mapped[datetime] = _now()


class CopyPath(Base):
    """A copy of a file or folder from one project into another (`services.copies`): a
    row from request to its end, so copies survive hub restarts and every hub (and psql)
    sees them. `state`: queued -> copying -> done | failed; `heartbeat` is renewed by the
    hub copying it, so a copy whose hub died is queued again."""

    __tablename__ = "copy_paths"
    __table_args__ = (
        Index("ix_copy_paths_src_project_id_created", "src_project_id", "created"),
        Index("ix_copy_paths_dst_project_id_created", "dst_project_id", "created"),
        Index("ix_copy_paths_account_id_created", "account_id", "created"),
        Index("ix_copy_paths_state_created", "state", "created"),
    )

    copy_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))  # one request, many rows
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.account_id", ondelete="SET NULL")
    )
    src_project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE")
    )
    src_path: Mapped[str] = mapped_column(Text)
    dst_project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.project_id", ondelete="CASCADE")
    )
    dst_path: Mapped[str] = mapped_column(Text)
    overwrite: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # A copy of a published item ("copy to my project"): src_path is inside the item, and
    # the item is looked up again when the copy runs (it may be gone by then).
    public_path_id: Mapped[str | None] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), server_default="queued")
    bytes_done: Mapped[int] = mapped_column(BigInteger, server_default="0")
    bytes_total: Mapped[int] = mapped_column(BigInteger, server_default="0")
    files_done: Mapped[int] = mapped_column(BigInteger, server_default="0")
    files_total: Mapped[int] = mapped_column(BigInteger, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    skipped: Mapped[list[Any]] = mapped_column(JSONB, server_default="[]")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created: Mapped[datetime] = _now()
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
