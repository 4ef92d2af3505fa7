"""search tables: memory index and learner cursors

Revision ID: search_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "search_0001"
down_revision = None
branch_labels = ("search",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "search_memory",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("query_key", sa.String(512), nullable=False),
        sa.Column("product_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("query_key", "product_id", "source", name="uq_search_memory"),
    )
    op.create_index("ix_search_memory_query_key", "search_memory", ["query_key"])
    op.create_index("ix_search_memory_product_id", "search_memory", ["product_id"])
    op.create_table(
        "search_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("search_cursors")
    op.drop_index("ix_search_memory_product_id", table_name="search_memory")
    op.drop_index("ix_search_memory_query_key", table_name="search_memory")
    op.drop_table("search_memory")
