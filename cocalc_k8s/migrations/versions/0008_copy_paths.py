"""copies between projects (copy_paths)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "copy_paths",
        sa.Column("copy_id", sa.UUID(), nullable=False),
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=True),
        sa.Column("src_project_id", sa.UUID(), nullable=False),
        sa.Column("src_path", sa.Text(), nullable=False),
        sa.Column("dst_project_id", sa.UUID(), nullable=False),
        sa.Column("dst_path", sa.Text(), nullable=False),
        sa.Column("overwrite", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("public_path_id", sa.String(length=40), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("files_done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("files_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "skipped", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
            name=op.f("fk_copy_paths_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["src_project_id"],
            ["projects.project_id"],
            name=op.f("fk_copy_paths_src_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dst_project_id"],
            ["projects.project_id"],
            name=op.f("fk_copy_paths_dst_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("copy_id", name=op.f("pk_copy_paths")),
    )
    for columns in (
        ("src_project_id", "created"),
        ("dst_project_id", "created"),
        ("account_id", "created"),
        ("state", "created"),
    ):
        op.create_index(f"ix_copy_paths_{'_'.join(columns)}", "copy_paths", list(columns))


def downgrade() -> None:
    op.drop_table("copy_paths")
