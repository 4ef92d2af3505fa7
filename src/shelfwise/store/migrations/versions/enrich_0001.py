"""enrich loop: batches, per-batch health counters, human review queue

Revision ID: enrich_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "enrich_0001"
down_revision = None
branch_labels = ("enrich",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "enrich_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("product_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_enrich_batches_seq", "enrich_batches", ["seq"])
    op.create_table(
        "enrich_batch_stats",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("category_path", sa.String(512), nullable=False),
        sa.Column("attribute", sa.String(128), nullable=False),
        sa.Column("products", sa.Integer(), nullable=False),
        sa.Column("decided", sa.Integer(), nullable=False),
        sa.Column("disagreements", sa.Integer(), nullable=False),
        sa.Column("supervisor_calls", sa.Integer(), nullable=False),
        sa.Column("reviews", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("learnings", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_enrich_batch_stats_batch_id", "enrich_batch_stats", ["batch_id"])
    op.create_table(
        "enrich_review_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("product_id", sa.String(128), nullable=False),
        sa.Column("category_path", sa.String(512), nullable=False),
        sa.Column("attribute", sa.String(128), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("proposed", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("learning_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_enrich_review_items_product_id", "enrich_review_items", ["product_id"])
    op.create_index("ix_enrich_review_items_status", "enrich_review_items", ["status"])


def downgrade() -> None:
    for table in ("enrich_review_items", "enrich_batch_stats", "enrich_batches"):
        op.drop_table(table)
