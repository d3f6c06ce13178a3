"""Alembic environment: the engine comes from the caller (cocalc_k8s.db.migrate)."""

from alembic import context

from cocalc_k8s.db.models import Base

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
