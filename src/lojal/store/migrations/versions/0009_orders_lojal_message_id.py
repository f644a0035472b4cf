"""orders.lojal_message_id: the e-mail an order came from, when the shop passes it through

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-30 18:25:00

A nullable column: every existing order keeps its row and gets NULL (attributed by last click).
down_revision is 0007 on this branch; the ledger's 0008 comes from another branch and the lead
chains them (0007 -> 0008 -> 0009) when merging.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lojal_message_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('lojal_message_id')
