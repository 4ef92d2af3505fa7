"""enrich knowledge base: learnings and their version history

Revision ID: enrich_kb_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "enrich_kb_0001"
down_revision = None
branch_labels = ("enrich_kb",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "kb_learnings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("space", sa.String(32), nullable=False),
        sa.Column("category_path", sa.String(512), nullable=False),
        sa.Column("path_key", sa.String(512), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(128), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("normalize", sa.JSON(), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("untrusted", sa.Boolean(), nullable=False),
        sa.Column("support", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("embedding", sa.JSON(), nullable=True),
        sa.Column("embedding_model", sa.String(128), nullable=True),
        sa.Column("promoted_from", sa.Integer(), nullable=True),
        sa.Column("times_injected", sa.Integer(), nullable=False),
        sa.Column("disagreements_after", sa.Integer(), nullable=False),
        sa.Column("agreements_after", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_kb_learnings_scope", "kb_learnings", ["space", "path_key", "attribute", "status"])
    op.create_table(
        "kb_learning_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("learning_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("category_path", sa.String(512), nullable=False),
        sa.Column("attribute", sa.String(128), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("normalize", sa.JSON(), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("learning_id", "version", name="uq_kb_learning_version"),
    )
    op.create_index("ix_kb_learning_versions_learning_id", "kb_learning_versions", ["learning_id"])


def downgrade() -> None:
    op.drop_table("kb_learning_versions")
    op.drop_table("kb_learnings")
