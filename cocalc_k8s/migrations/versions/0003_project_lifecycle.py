"""project lifecycle: start/stop requests (with a NOTIFY trigger) and state transitions

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("requested", sa.String(length=16), nullable=True))
    op.add_column("projects", sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "project_transitions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column(
            "time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.project_id"],
            name=op.f("fk_project_transitions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_transitions")),
    )
    op.create_index(
        op.f("ix_project_transitions_project_id"), "project_transitions", ["project_id"]
    )
    # Any writer of a request (a hub, an admin's psql) wakes the lifecycle manager.
    op.execute(
        """
        CREATE FUNCTION cocalc_notify_project_request() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('cocalc_project_requests', NEW.project_id::text);
            RETURN NEW;
        END
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE TRIGGER projects_requested
        AFTER INSERT OR UPDATE OF requested ON projects
        FOR EACH ROW WHEN (NEW.requested IS NOT NULL)
        EXECUTE FUNCTION cocalc_notify_project_request()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER projects_requested ON projects")
    op.execute("DROP FUNCTION cocalc_notify_project_request()")
    op.drop_index(op.f("ix_project_transitions_project_id"), table_name="project_transitions")
    op.drop_table("project_transitions")
    op.drop_column("projects", "requested_at")
    op.drop_column("projects", "requested")
