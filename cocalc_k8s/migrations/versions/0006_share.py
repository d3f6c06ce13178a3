"""share: published paths, usernames and project URL names (with old-name redirects)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column("accounts", sa.Column("username", sa.String(length=40), nullable=True))
    op.create_unique_constraint(op.f("uq_accounts_username"), "accounts", ["username"])
    op.create_table(
        "public_paths",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("license", sa.String(length=16), server_default="none", nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _now("created"),
        _now("last_edited"),
        sa.Column("views", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.project_id"],
            name=op.f("fk_public_paths_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["accounts.account_id"],
            name=op.f("fk_public_paths_created_by_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_public_paths")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_public_paths_project_id_name")),
        sa.UniqueConstraint("project_id", "path", name=op.f("uq_public_paths_project_id_path")),
    )
    op.create_index("ix_public_paths_visibility_created", "public_paths", ["visibility", "created"])
    op.create_table(
        "project_url_names",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.project_id"],
            name=op.f("fk_project_url_names_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["accounts.account_id"],
            name=op.f("fk_project_url_names_owner_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_url_names")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_project_url_names_owner_id_name")),
    )
    op.create_table(
        "username_redirects",
        sa.Column("old_name", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        _now("created"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
            name=op.f("fk_username_redirects_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("old_name", name=op.f("pk_username_redirects")),
    )
    op.create_table(
        "project_name_redirects",
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("old_name", sa.String(length=100), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        _now("created"),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["accounts.account_id"],
            name=op.f("fk_project_name_redirects_owner_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.project_id"],
            name=op.f("fk_project_name_redirects_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "old_name", name=op.f("pk_project_name_redirects")),
    )


def downgrade() -> None:
    op.drop_table("project_name_redirects")
    op.drop_table("username_redirects")
    op.drop_table("project_url_names")
    op.drop_index("ix_public_paths_visibility_created", table_name="public_paths")
    op.drop_table("public_paths")
    op.drop_constraint(op.f("uq_accounts_username"), "accounts", type_="unique")
    op.drop_column("accounts", "username")
