"""file_versions: TimeTravel histories of project files and their versions

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_histories",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column(
            "project_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "projects.project_id",
                ondelete="CASCADE",
                name="fk_file_histories_project_id_projects",
            ),
            nullable=False,
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column(
            "created", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("deleted", sa.DateTime(timezone=True)),
        sa.Column("last_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_hash", sa.LargeBinary(32)),
        sa.PrimaryKeyConstraint("id", name="pk_file_histories"),
    )
    op.create_index(
        "uq_file_histories_project_id_path",
        "file_histories",
        ["project_id", "path"],
        unique=True,
        postgresql_where=sa.text("deleted IS NULL"),
    )
    op.create_table(
        "file_versions",
        sa.Column(
            "history_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "file_histories.id",
                ondelete="CASCADE",
                name="fk_file_versions_history_id_file_histories",
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("authors", ARRAY(UUID(as_uuid=True)), server_default="{}", nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("base", sa.Integer()),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("restored_from", sa.Integer()),
        sa.PrimaryKeyConstraint("history_id", "version", name="pk_file_versions"),
    )


def downgrade() -> None:
    op.drop_table("file_versions")
    op.drop_index("uq_file_histories_project_id_path", table_name="file_histories")
    op.drop_table("file_histories")
