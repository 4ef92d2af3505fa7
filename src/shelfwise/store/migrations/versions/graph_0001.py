"""graph tables: candidates, intents, edges, edge products, annotations, relations, serving cache

Revision ID: graph_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "graph_0001"
down_revision = None
branch_labels = ("graph",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "graph_candidates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("pair_key", sa.String(400), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("product_ids", sa.JSON(), nullable=False),
        sa.Column("relation", sa.String(64), nullable=False),
        sa.Column("tail", sa.String(200), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("pair_key", "relation", "tail", name="uq_graph_candidate"),
    )
    op.create_index("ix_graph_candidates_pair_key", "graph_candidates", ["pair_key"])
    op.create_index("ix_graph_candidates_stage", "graph_candidates", ["stage"])
    op.create_table(
        "graph_intents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("text", sa.String(200), nullable=False, unique=True),
    )
    op.create_table(
        "graph_edges",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("head", sa.String(400), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("relation", sa.String(64), nullable=False),
        sa.Column("intent_id", sa.Integer(), sa.ForeignKey("graph_intents.id"), nullable=False),
        sa.Column("plausibility", sa.Float(), nullable=True),
        sa.Column("typicality", sa.Float(), nullable=True),
        sa.Column("support", sa.Integer(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("head", "relation", "intent_id", name="uq_graph_edge"),
    )
    op.create_index("ix_graph_edges_head", "graph_edges", ["head"])
    op.create_index("ix_graph_edges_intent_id", "graph_edges", ["intent_id"])
    op.create_table(
        "graph_edge_products",
        sa.Column("edge_id", sa.Integer(), sa.ForeignKey("graph_edges.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("product_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_graph_edge_products_product_id", "graph_edge_products", ["product_id"])
    op.create_table(
        "graph_annotation_items",
        sa.Column("candidate_id", sa.Integer(), sa.ForeignKey("graph_candidates.id"), primary_key=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolved", sa.JSON(), nullable=True),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "graph_annotations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("candidate_id", sa.Integer(), sa.ForeignKey("graph_candidates.id"), nullable=False),
        sa.Column("annotator", sa.String(128), nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("candidate_id", "annotator", name="uq_graph_annotation"),
    )
    op.create_index("ix_graph_annotations_candidate_id", "graph_annotations", ["candidate_id"])
    op.create_table(
        "graph_relations",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("support", sa.Integer(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "graph_cache",
        sa.Column("query", sa.String(400), primary_key=True),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("hits", sa.JSON(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("graph_cache", "graph_relations", "graph_annotations", "graph_annotation_items",
                  "graph_edge_products", "graph_edges", "graph_intents", "graph_candidates"):
        op.drop_table(table)
