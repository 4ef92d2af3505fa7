"""enrich review queue: who proposed an item's value (the supervisor, or a source the track record trusted), and
the model behind each source when the item was opened

Revision ID: enrich_0002
Revises: enrich_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "enrich_0002"
down_revision = "enrich_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL on existing rows: they were all proposed by the supervisor, and the track record counts them for
    # whatever model a role runs now.
    with op.batch_alter_table("enrich_review_items") as batch:
        batch.add_column(sa.Column("proposed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("models", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrich_review_items") as batch:
        batch.drop_column("models")
        batch.drop_column("proposed_by")
