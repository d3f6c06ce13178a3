"""Alembic migrations, run at start-up or by `cocalc-k8s migrate`.

The hub refuses to run on a database whose revision this version does not know (a newer
release migrated it, or it is not a cocalc-k8s database): running old code on a newer
schema is how data gets lost.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, select

from cocalc_k8s.db.engine import create_sync_engine

MIGRATION_LOCK = 7_002  # pg_advisory_lock key held while migrating
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class RevisionError(RuntimeError):
    """The database is at a revision this version cannot run on."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration; `connection` is what env.py migrates through."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def check_known_revision(engine_or_conn: Engine | Connection) -> str | None:
    """Raise RevisionError when the database's revision is not one of ours."""
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return check_known_revision(conn)
    current = current_revision(engine_or_conn)
    if current is None:
        return None
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in scripts.walk_revisions()}
    if current not in known:
        raise RevisionError(
            f"the database is at revision {current!r}, which this version of cocalc-k8s "
            f"does not know (its newest is {head_revision()!r}). It was probably migrated by "
            "a newer release: run that release, or restore a backup."
        )
    return current


def upgrade(url: str) -> tuple[str | None, str]:
    """Migrate to head; returns (revision before, revision after)."""
    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            # Two hubs starting at once must not migrate at the same time.
            conn.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))
            conn.commit()
            try:
                before = check_known_revision(conn)
                conn.commit()
                command.upgrade(alembic_config(conn), "head")
                conn.commit()
            finally:
                conn.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK)))
                conn.commit()
        return before, head_revision()
    finally:
        engine.dispose()


def require_head(url: str) -> None:
    """For processes that must not migrate: the database must be exactly at head."""
    engine = create_sync_engine(url)
    try:
        current = check_known_revision(engine)
    finally:
        engine.dispose()
    if current != head_revision():
        raise RevisionError(
            f"the database is at revision {current!r}, not {head_revision()!r}: "
            "run `cocalc-k8s migrate`"
        )
