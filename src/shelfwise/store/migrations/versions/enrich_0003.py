"""enrich review queue: the model behind each source (worker roles, evaluator, supervisor) when an item opened

Revision ID: enrich_0003
Revises: enrich_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "enrich_0003"
down_revision = "enrich_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL on existing rows: the track record counts them for whatever model a role runs now.
    with op.batch_alter_table("enrich_review_items") as batch:
        batch.add_column(sa.Column("models", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrich_review_items") as batch:
        batch.drop_column("models")
