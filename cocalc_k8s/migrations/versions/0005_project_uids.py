"""project uids come from a sequence, so a purged project's uid is never handed out again

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE project_uids MINVALUE 200000 START WITH 200000")
    # Continue above every uid already handed out (those of purged projects are gone
    # with their rows: their daemons, if any survived, ran under uids below these).
    op.execute(
        "SELECT setval('project_uids', GREATEST(200000,"
        " COALESCE(MAX((resolved->>'uid')::integer) + 1, 200000)), false) FROM projects"
    )


def downgrade() -> None:
    op.execute("DROP SEQUENCE project_uids")
