"""Resources and tags.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("name_key", sa.String(256), nullable=False),
        sa.Column("arn", sa.String(512), nullable=False, unique=True),
        sa.Column("status", sa.String(64), nullable=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("kind", "name_key", name="uq_resources_kind_name"),
    )
    op.create_index("ix_resources_kind", "resources", ["kind"])
    op.create_index("ix_resources_created_at", "resources", ["created_at"])
    op.create_table(
        "tags",
        sa.Column("arn", sa.String(512), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tags")
    op.drop_table("resources")
