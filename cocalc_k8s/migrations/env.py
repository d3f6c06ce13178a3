"""Alembic environment: the connection comes from the caller (cocalc_k8s.db.migrate),
which holds the migration lock on it."""

from alembic import context

from cocalc_k8s.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
