"""The durable queue of asynchronous invocations.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "async_invocations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("inference_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("invocation_timeout", sa.Float, nullable=False),
        sa.Column("lease_token", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_async_invocations_endpoint", "async_invocations", ["endpoint"])
    op.create_index("ix_async_invocations_received_at", "async_invocations", ["received_at"])
    op.create_index("ix_async_invocations_lease_token", "async_invocations", ["lease_token"])


def downgrade() -> None:
    op.drop_table("async_invocations")
