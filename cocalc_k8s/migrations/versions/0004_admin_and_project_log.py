"""bans, sign-up tokens and the project log (events that belong to a project)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("banned", sa.DateTime(timezone=True), nullable=True))
    op.add_column("events", sa.Column("project_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_events_project_id_projects"),
        "events",
        "projects",
        ["project_id"],
        ["project_id"],
        ondelete="CASCADE",
    )
    op.create_index(op.f("ix_events_project_id_time"), "events", ["project_id", "time"])
    op.create_table(
        "signup_tokens",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=200), server_default="", nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["accounts.account_id"],
            name=op.f("fk_signup_tokens_created_by_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_signup_tokens")),
    )


def downgrade() -> None:
    op.drop_table("signup_tokens")
    op.drop_index(op.f("ix_events_project_id_time"), table_name="events")
    op.drop_constraint(op.f("fk_events_project_id_projects"), "events", type_="foreignkey")
    op.drop_column("events", "project_id")
    op.drop_column("accounts", "banned")
