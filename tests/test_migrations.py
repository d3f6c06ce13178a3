"""Migrations: an empty database reaches head, models and migrations agree, and a
database at an unknown revision is refused."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cocalc_k8s.db.engine import create_sync_engine
from cocalc_k8s.db.migrate import (
    RevisionError,
    check_known_revision,
    head_revision,
    require_head,
    upgrade,
)
from cocalc_k8s.db.models import Base


def test_empty_database_migrates_to_head(empty_database_url: str) -> None:
    before, after = upgrade(empty_database_url)
    assert before is None
    assert after == head_revision()
    with psycopg.connect(empty_database_url) as conn:
        tables = {
            row[0]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert {"accounts", "sessions", "api_keys", "events", "alembic_version"} <= tables
    # Running again is a no-op.
    assert upgrade(empty_database_url) == (head_revision(), head_revision())
    require_head(empty_database_url)


def test_models_match_migrations(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    engine = create_sync_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_unknown_revision_is_refused(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    engine = create_sync_engine(empty_database_url)
    try:
        with pytest.raises(RevisionError, match="newer release"):
            check_known_revision(engine)
    finally:
        engine.dispose()
    with pytest.raises(RevisionError):
        upgrade(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == "9999_from_the_future"  # nothing was touched


def test_require_head_refuses_an_unmigrated_database(empty_database_url: str) -> None:
    with pytest.raises(RevisionError, match="cocalc-k8s migrate"):
        require_head(empty_database_url)
