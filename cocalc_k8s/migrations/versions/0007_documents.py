"""documents: collaborative documents, their updates (each committed before it is seen)
and checkpoints

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "project_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "projects.project_id",
                ondelete="CASCADE",
                name="fk_documents_project_id_projects",
            ),
            nullable=False,
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("epoch", sa.Integer(), server_default="1", nullable=False),
        sa.Column("seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "changed", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("disk_hash", sa.LargeBinary(32)),
        sa.Column("disk_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
    )
    op.create_index(
        "uq_documents_project_id_path", "documents", ["project_id", "path"], unique=True
    )
    op.create_table(
        "document_updates",
        sa.Column(
            "document_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "documents.id", ondelete="CASCADE", name="fk_document_updates_document_id_documents"
            ),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column(
            "account_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "accounts.account_id",
                ondelete="SET NULL",
                name="fk_document_updates_account_id_accounts",
            ),
        ),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("document_id", "seq", name="pk_document_updates"),
    )
    op.create_table(
        "document_checkpoints",
        sa.Column(
            "document_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "documents.id",
                ondelete="CASCADE",
                name="fk_document_checkpoints_document_id_documents",
            ),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("document_id", "seq", name="pk_document_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("document_checkpoints")
    op.drop_table("document_updates")
    op.drop_table("documents")
